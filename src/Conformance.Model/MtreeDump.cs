using System.Globalization;
using System.Text.RegularExpressions;

namespace Conformance.Model;

/// <summary>
/// Reads the tree form of QEMU's `info mtree` (as printed by softmmu/memory.c:mtree_info_as, with or
/// without -D) into a <see cref="LayoutSpec"/>. Regions printed more than once (an alias target's
/// "memory-region:" section repeats a subtree of an address space) become one region.
/// </summary>
public static partial class MtreeDump
{
    [GeneratedRegex(@"^(?<indent> *)(?:\[DETECTED OVERFLOW!\] )?(?<start>[0-9a-f]+)-(?<end>[0-9a-f]+) \(prio (?<prio>-?\d+), (?<nv>nv-)?(?<type>[^)]*)\): (?<rest>.*)$")]
    private static partial Regex LineRegex();

    [GeneratedRegex(@"^alias (?<name>.+?) @(?<target>.+) (?<aoff>[0-9a-f]+)-(?<aend>[0-9a-f]+)$")]
    private static partial Regex AliasRegex();

    private sealed class Node
    {
        public required string Name;
        public required string Type;
        public required bool Nonvolatile;
        public required ulong Start;
        public required UInt128 Size;
        public required int Priority;
        public required bool Enabled;
        public required int Line;
        public string? AliasTarget;
        public ulong AliasOffset;
        public readonly List<Node> Children = new();
        public Node? Parent;
        public Node? SameAs;   // a repeated print of another node

        public string Signature() =>
            $"{Name}|{Type}|{Size}|{Priority}|{Enabled}|{AliasTarget}|{AliasOffset}|" + string.Join(",", Children.Select(c => c.Signature()));
    }

    private sealed record Block(List<string> AddressSpaces, string? MemoryRegionName, Node Root);

    /// <summary>
    /// Parses a dump. <paramref name="terminatingIo"/> names i/o regions with subregions that terminate
    /// (the dump cannot show it; see fixtures/layouts/dump-layouts.sh). <paramref name="source"/> names the
    /// input in error messages.
    /// </summary>
    public static LayoutSpec Parse(string text, IReadOnlyCollection<string>? terminatingIo = null, string source = "mtree")
    {
        terminatingIo ??= Array.Empty<string>();
        var blocks = ParseBlocks(text, source);
        if (blocks.Count == 0) throw new LayoutError($"{source}:1", "no 'address-space:' or 'memory-region:' section found");

        // Every node printed inside an address-space tree, in print order: the canonical copies.
        var canonical = blocks.Where(b => b.MemoryRegionName is null).SelectMany(b => Walk(b.Root)).ToList();

        // A memory-region section whose root is printed elsewhere is the same region.
        var detached = new List<Node>();
        foreach (var b in blocks.Where(b => b.MemoryRegionName is not null))
        {
            var sig = b.Root.Signature();
            var same = canonical.Where(n => n.Signature() == sig).ToList();
            if (same.Count > 0) b.Root.SameAs = same[0];
            else
            {
                detached.Add(b.Root);
                canonical.AddRange(Walk(b.Root));
            }
        }

        var roots = blocks.Where(b => b.MemoryRegionName is null).Select(b => b.Root).Concat(detached).ToList();
        string Resolve(string targetName, Node alias)
        {
            var rootHits = roots.Where(r => r.Name == targetName).ToList();
            if (rootHits.Count == 1) return targetName;
            var hits = canonical.Where(n => n.Name == targetName).Select(n => n.SameAs ?? n).Distinct().ToList();
            if (hits.Count == 1) return targetName;
            throw new LayoutError($"{source}:{alias.Line}", hits.Count == 0
                ? $"alias '{alias.Name}' targets '{targetName}', which the dump never prints"
                : $"alias '{alias.Name}' targets '{targetName}', a name {hits.Count} different regions carry");
        }

        RegionSpec ToSpec(Node n, Node? parent)
        {
            var subs = n.Children.Select(c => ToSpec(c, n)).ToList();
            RegionKind kind;
            if (n.AliasTarget is not null) kind = RegionKind.Alias;
            else kind = n.Type switch
            {
                "ram" => RegionKind.Ram,
                "rom" => RegionKind.Rom,
                "romd" => RegionKind.RomDevice,
                "ramd" => RegionKind.RamDevice,
                "i/o" => n.Children.Count > 0 && !terminatingIo.Contains(n.Name) ? RegionKind.Container : RegionKind.Io,
                _ => throw new LayoutError($"{source}:{n.Line}", $"unknown region type '{n.Type}'"),
            };
            return new RegionSpec
            {
                Name = n.Name,
                Kind = kind,
                Size = n.Size,
                Addr = parent is null ? n.Start : unchecked(n.Start - parent.Start),
                Priority = n.Priority,
                Enabled = n.Enabled,
                Nonvolatile = n.Nonvolatile,
                Terminates = kind == RegionKind.Io && n.Children.Count > 0,
                AliasTarget = n.AliasTarget is null ? null : Resolve(n.AliasTarget, n),
                AliasOffset = n.AliasOffset,
                // A QEMU started with -S has zeroed RAM and device registers; ROM images are not in the dump.
                Seed = 0u,
                Subregions = subs,
            };
        }

        var regionSpecs = roots.Select(r => ToSpec(r, null)).ToList();
        var spaces = new List<AddressSpaceSpec>();
        int rootIndex = 0;
        foreach (var b in blocks.Where(b => b.MemoryRegionName is null))
        {
            foreach (var a in b.AddressSpaces)
                spaces.Add(new AddressSpaceSpec(a, b.Root.Name, RootIndex: rootIndex));
            rootIndex++;
        }
        return new LayoutSpec(regionSpecs, spaces, DirtyLogging.Default);
    }

    private static IEnumerable<Node> Walk(Node n)
    {
        yield return n;
        foreach (var c in n.Children)
            foreach (var d in Walk(c))
                yield return d;
    }

    private static List<Block> ParseBlocks(string text, string source)
    {
        var blocks = new List<Block>();
        var lines = text.Replace("\r\n", "\n").Split('\n');
        var pendingSpaces = new List<string>();
        string? pendingRegion = null;
        var stack = new List<(int Indent, Node Node)>();
        Node? root = null;

        void Close()
        {
            if (root is not null) blocks.Add(new Block(new List<string>(pendingSpaces), pendingRegion, root));
            else if (pendingSpaces.Count > 0 || pendingRegion is not null)
            {
                // An address space whose root is printed with another group's header cannot happen;
                // a header without a tree is malformed.
                throw new LayoutError($"{source}", $"section '{pendingRegion ?? pendingSpaces[0]}' has no region tree");
            }
            pendingSpaces.Clear();
            pendingRegion = null;
            root = null;
            stack.Clear();
        }

        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd();
            int lineNo = i + 1;
            if (line.Length == 0)
            {
                if (root is not null) Close();
                continue;
            }
            if (line.StartsWith("address-space: ", StringComparison.Ordinal))
            {
                if (root is not null) Close();
                pendingSpaces.Add(line["address-space: ".Length..]);
                continue;
            }
            if (line.StartsWith("memory-region: ", StringComparison.Ordinal))
            {
                if (root is not null) Close();
                pendingRegion = line["memory-region: ".Length..];
                continue;
            }
            var m = LineRegex().Match(line);
            if (!m.Success) throw new LayoutError($"{source}:{lineNo}", $"not an `info mtree` line: '{line}'");
            if (pendingSpaces.Count == 0 && pendingRegion is null)
                throw new LayoutError($"{source}:{lineNo}", "region line outside an 'address-space:' or 'memory-region:' section");

            int indent = m.Groups["indent"].Length;
            ulong start = ulong.Parse(m.Groups["start"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong end = ulong.Parse(m.Groups["end"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            UInt128 size = unchecked((UInt128)(end - start) + 1);   // MR_SIZE prints size-1; a 2^64 region prints UINT64_MAX
            string rest = m.Groups["rest"].Value;
            bool enabled = true;
            if (rest.EndsWith(" [disabled]", StringComparison.Ordinal))
            {
                enabled = false;
                rest = rest[..^" [disabled]".Length];
            }
            var node = new Node
            {
                Name = rest,
                Type = m.Groups["type"].Value,
                Nonvolatile = m.Groups["nv"].Success,
                Start = start,
                Size = size,
                Priority = int.Parse(m.Groups["prio"].Value, CultureInfo.InvariantCulture),
                Enabled = enabled,
                Line = lineNo,
            };
            var am = AliasRegex().Match(rest);
            if (am.Success)
            {
                node.Name = am.Groups["name"].Value;
                node.AliasTarget = am.Groups["target"].Value;
                node.AliasOffset = ulong.Parse(am.Groups["aoff"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }

            while (stack.Count > 0 && stack[^1].Indent >= indent) stack.RemoveAt(stack.Count - 1);
            if (stack.Count == 0)
            {
                if (root is not null) throw new LayoutError($"{source}:{lineNo}", "a section has two root regions");
                root = node;
            }
            else
            {
                node.Parent = stack[^1].Node;
                stack[^1].Node.Children.Add(node);
            }
            stack.Add((indent, node));
        }
        Close();
        return blocks;
    }
}
