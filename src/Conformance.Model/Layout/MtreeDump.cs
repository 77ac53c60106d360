using System.Globalization;
using System.Text.RegularExpressions;

namespace Conformance.Model;

/// <summary>What an import had to assume, and from what the region kinds were settled.</summary>
public sealed record MtreeImport(LayoutSpec Layout, IReadOnlyList<string> Warnings, MtreeDialect Dialect);

/// <summary>
/// How a dump spells the type of a region that is neither RAM nor ROM (memory.c:memory_region_type;
/// docs/layouts.md, "Type words"). Neither spelling tells a pure container from a region with its own ops.
/// </summary>
public enum MtreeDialect
{
    /// <summary>QEMU 7.2 to 10.x: always `i/o`.</summary>
    IoOnly,
    /// <summary>QEMU 11 and later: `container` for a region that is no other region's subregion (also the
    /// system I/O root `io`, which has ops), `i/o` otherwise (also the pure container `pci`).</summary>
    ParentlessContainers,
}

/// <summary>Options of <see cref="MtreeDump.Import"/>.</summary>
public sealed record MtreeImportOptions
{
    /// <summary>Names the input in error messages and warnings.</summary>
    public string Source { get; init; } = "mtree";

    /// <summary>An `info mtree -f` dump of the same machine: settles which `i/o` regions terminate.</summary>
    public string? Flat { get; init; }
}

/// <summary>
/// Reads the tree form of QEMU's `info mtree` (softmmu/memory.c:mtree_info_as and mtree_print_mr) into a
/// <see cref="LayoutSpec"/>: with or without -D, with or without -o, from QEMU 7.2 to 11.x. The forms and
/// what is assumed where a dump cannot say are in docs/layouts.md.
/// </summary>
public static partial class MtreeDump
{
    [GeneratedRegex(@"^(?<indent> *)(?:\[DETECTED OVERFLOW!\] )?(?<start>[0-9a-f]+)-(?<end>[0-9a-f]+) \(prio (?<prio>-?\d+), (?<nv>nv-)?(?<type>[^)]*)\): (?<rest>.*)$")]
    private static partial Regex LineRegex();

    [GeneratedRegex(@"^alias (?<name>.+?) @(?<target>.+) (?<aoff>[0-9a-f]+)-(?<aend>[0-9a-f]+)$")]
    private static partial Regex AliasRegex();

    /// <summary>The owner and parent suffixes `-o` prints (memory.c:mtree_print_mr_owner).</summary>
    [GeneratedRegex(@"(?: (?:owner|parent):\{(?:dev|obj)[^}]*\})+$| orphan$")]
    private static partial Regex OwnerSuffixRegex();

    /// <summary>
    /// `i/o` regions that have subregions and still terminate: they are created with their own ops and
    /// then get subregions added (docs/layouts.md, "Terminating i/o regions", gives where QEMU creates each).
    /// </summary>
    public static readonly IReadOnlyCollection<string> KnownTerminatingWithSubregions = new[]
    {
        "io", "rtc", "vga.mmio", "bochs-display-mmio", "megasas-mmio", "gpex_mmio_window", "gpex_ioport_window",
    };

    /// <summary>
    /// Pure containers that a dump without -D may print with no subregions, because every subregion they
    /// have at reset is disabled (docs/layouts.md, "Dumps without -D").
    /// </summary>
    public static readonly IReadOnlyCollection<string> KnownContainers = new[]
    {
        "bus master container", "smram", "pci_bridge_io", "pci_bridge_pci", "e1000e-flash", "igb-flash",
        "gpex_mmio", "gpex_ioport", "platform bus",
    };

    /// <summary>
    /// Aliases QEMU makes read-only (memory_region_set_readonly on the alias): the tree prints an alias with
    /// its target's type word, so only the flat view shows it (docs/layouts.md, "Read-only aliases").
    /// </summary>
    public static readonly IReadOnlyCollection<string> KnownReadonlyAliases = new[] { "pam-rom" };

    /// <summary>intel-iommu's per-device DMA remapping regions (IOMMU regions terminate), disabled until the guest enables remapping.</summary>
    [GeneratedRegex(@"^vtd-[0-9a-f]{2}\.[0-7]-dmar$")]
    private static partial Regex IommuRegion();

    /// <summary>The name given to a disabled region that a dump without -D leaves out but whose subregions it prints.</summary>
    public const string UnprintedRegion = "(disabled, not printed)";

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
        public bool Placeholder;
        public string? AliasTarget;
        public ulong AliasOffset;
        public readonly List<Node> Children = new();
        public Node? SameAs;   // a repeated print of another node
        public bool? Terminates;

        public ulong Last => unchecked(Start + (ulong)(Size - 1));

        public string Signature() =>
            $"{Name}|{Type}|{Size}|{Priority}|{Enabled}|{AliasTarget}|{AliasOffset}|" + string.Join(",", Children.Select(c => c.Signature()));
    }

    private sealed record Block(List<string> AddressSpaces, string? MemoryRegionName, Node Root, int HeaderLine);

    /// <summary>Parses a dump into a layout, ignoring what had to be assumed (see <see cref="Import"/>).</summary>
    public static LayoutSpec Parse(string text, string source = "mtree") =>
        Import(text, new MtreeImportOptions { Source = source }).Layout;

    /// <summary>
    /// Parses a dump. Whether a region printed as `i/o` or `container` is a pure container is settled by
    /// <see cref="MtreeImportOptions.Flat"/>, and otherwise by <see cref="KnownTerminatingWithSubregions"/>
    /// and <see cref="KnownContainers"/>, with a warning naming what was assumed.
    /// </summary>
    public static MtreeImport Import(string text, MtreeImportOptions options)
    {
        string source = options.Source;
        var warnings = new List<string>();
        var (blocks, hasDisabled) = ParseBlocks(text, source);
        if (blocks.Count == 0) throw new LayoutError($"{source}:1", "no 'address-space:' or 'memory-region:' section found");
        var all = blocks.SelectMany(b => Walk(b.Root)).ToList();
        var dialect = all.Any(n => !n.Placeholder && n.Type == "container") ? MtreeDialect.ParentlessContainers : MtreeDialect.IoOnly;

        foreach (var n in all)
        {
            if (n.Type is not ("ram" or "rom" or "romd" or "ramd" or "i/o" or "container"))
                throw new LayoutError($"{source}:{n.Line}", $"unknown region type '{n.Type}'");
            if (n.AliasTarget is null && n.Type is "ram" or "rom" or "romd" or "ramd" && n.Children.Count > 0)
                throw new LayoutError($"{source}:{n.Children[0].Line}", $"a {n.Type} region ('{n.Name}') with subregions is not modelled");
        }

        var spaceRoots = blocks.Where(b => b.MemoryRegionName is null).ToDictionary(b => b.Root, b => b.AddressSpaces.ToHashSet());
        SettleTermination(all, spaceRoots, options, warnings);
        var readonlyAliases = options.Flat is { } flatText ? ReadonlyAliasesFromFlat(blocks, flatText, options.Source) : new HashSet<Node>();

        // Every node printed inside an address-space tree, in print order: the canonical copies.
        var canonical = blocks.Where(b => b.MemoryRegionName is null).SelectMany(b => Walk(b.Root)).ToList();

        // A memory-region section whose root is printed elsewhere is the same region.
        var detached = new List<Node>();
        foreach (var b in blocks.Where(b => b.MemoryRegionName is not null))
        {
            var sig = b.Root.Signature();
            var same = canonical.FirstOrDefault(n => n.Signature() == sig);
            if (same is not null) b.Root.SameAs = same;
            else
            {
                detached.Add(b.Root);
                canonical.AddRange(Walk(b.Root));
            }
        }

        var roots = blocks.Where(b => b.MemoryRegionName is null).Select(b => b.Root).Concat(detached).ToList();
        var printOrder = roots.SelectMany(Walk).ToList();
        var resolved = new Dictionary<Node, Node>();
        (string Name, int? Occurrence) Resolve(string targetName, Node alias)
        {
            // Several regions may carry the name (two devices of one type); they are interchangeable for
            // rendering when their printed subtrees are the same, and then the first one printed stands for all.
            var rootHits = roots.Where(r => r.Name == targetName).ToList();
            var hits = rootHits.Count > 0
                ? rootHits
                : canonical.Where(n => n.Name == targetName).Select(n => n.SameAs ?? n).Distinct().ToList();
            // Aliases are often named after their target ("alias vtd-ir @vtd-ir"): a region of the name wins.
            if (hits.Any(h => h.AliasTarget is null)) hits = hits.Where(h => h.AliasTarget is null).ToList();
            if (hits.Count == 0)
                throw new LayoutError($"{source}:{alias.Line}", $"alias '{alias.Name}' targets '{targetName}', which the dump never prints");
            if (hits.Select(h => h.Signature()).Distinct().Count() > 1)
                throw new LayoutError($"{source}:{alias.Line}",
                    $"alias '{alias.Name}' targets '{targetName}', a name {hits.Count} different regions carry");
            var named = printOrder.Where(n => n.Name == targetName).ToList();
            resolved[alias] = hits[0];
            return (targetName, named.Count > 1 ? named.IndexOf(hits[0]) : null);
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
                _ => n.Terminates == true ? RegionKind.Io : RegionKind.Container,
            };
            var target = n.AliasTarget is null ? ((string?)null, (int?)null) : Resolve(n.AliasTarget, n);
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
                Readonly = n.AliasTarget is not null && (KnownReadonlyAliases.Contains(n.Name) || readonlyAliases.Contains(n)),
                AliasTarget = target.Item1,
                AliasTargetOccurrence = target.Item2,
                AliasOffset = n.AliasOffset,
                // A QEMU started with -S has zeroed RAM and device registers; ROM images are not in the dump.
                Seed = 0u,
                Subregions = subs,
            };
        }

        var regionSpecs = roots.Select(r => ToSpec(r, null)).ToList();
        RejectAliasCycles(roots, resolved, source);
        var spaces = new List<AddressSpaceSpec>();
        var seen = new Dictionary<string, int>();
        int rootIndex = 0;
        foreach (var b in blocks.Where(b => b.MemoryRegionName is null))
        {
            foreach (var a in b.AddressSpaces)
            {
                // Two devices of one type give two address spaces of one name: the second is "name#2", in print order.
                int count = seen[a] = seen.GetValueOrDefault(a) + 1;
                spaces.Add(new AddressSpaceSpec(count == 1 ? a : $"{a}#{count}", b.Root.Name, RootIndex: rootIndex));
            }
            rootIndex++;
        }
        return new MtreeImport(new LayoutSpec(regionSpecs, spaces, DirtyLogging.Default), warnings, dialect);
    }

    /// <summary>
    /// Decides, for every region printed as `i/o` or `container`, whether it terminates. No version of
    /// `info mtree` prints it: a region with subregions may be a pure container (`pci`) or have its own ops
    /// (`io`, `rtc`), and in a dump without -D a region printed without subregions may be a pure container
    /// whose subregions are all disabled (`bus master container`).
    /// </summary>
    private static void SettleTermination(List<Node> all, IReadOnlyDictionary<Node, HashSet<string>> spaceRoots, MtreeImportOptions options, List<string> warnings)
    {
        var io = all.Where(n => n.AliasTarget is null && !n.Placeholder && n.Type is "i/o" or "container").ToList();
        if (options.Flat is { } flat)
        {
            // A region that terminates shows in QEMU's flat view under its own name wherever nothing above it
            // covers it; a container never does. One that is covered everywhere renders the same either way.
            // Names repeat (a legacy virtio-pci I/O BAR and an empty modern BAR container are both "virtio-pci"),
            // so the root of an address space is judged by that address space's own view.
            var views = FlatViewDump.Parse(flat, options.Source + " (flat)");
            var names = views.SelectMany(v => v.Ranges).Select(r => r.Name).ToHashSet();
            foreach (var n in io)
            {
                n.Terminates = spaceRoots.TryGetValue(n, out var spaces)
                    ? views.Where(v => v.Spaces.Any(s => spaces.Contains(s.Name))).SelectMany(v => v.Ranges).Any(r => r.Name == n.Name)
                    : names.Contains(n.Name);
            }
            return;
        }

        var assumedTerminating = new SortedSet<string>(StringComparer.Ordinal);
        var assumedContainers = new SortedSet<string>(StringComparer.Ordinal);
        var emptyContainers = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var n in io)
        {
            if (n.Children.Count > 0)
            {
                n.Terminates = KnownTerminatingWithSubregions.Contains(n.Name) || IommuRegion().IsMatch(n.Name);
                (n.Terminates == true ? assumedTerminating : assumedContainers).Add(n.Name);
            }
            // A region with ops that is a whole address space by itself is unheard of; an empty container
            // there is common (a PCI function's BAR container with nothing mapped).
            else if (KnownContainers.Contains(n.Name) || (spaceRoots.ContainsKey(n) && !KnownTerminatingWithSubregions.Contains(n.Name)))
            {
                n.Terminates = false;
                emptyContainers.Add(n.Name);
            }
            else n.Terminates = true;
        }
        if (assumedTerminating.Count + assumedContainers.Count + emptyContainers.Count > 0)
        {
            warnings.Add(
                $"warning: {options.Source}: `info mtree` does not show which regions are pure containers; assumed " +
                (assumedTerminating.Count > 0 ? $"{string.Join(", ", assumedTerminating)} terminate (QEMU gives them ops), " : "") +
                $"the other {assumedContainers.Count} region name(s) with subregions" +
                (emptyContainers.Count > 0 ? $" and {string.Join(", ", emptyContainers)} (printed without)" : "") +
                " are pure containers; give --flat with `info mtree -f` of the same machine to settle it");
        }
    }

    /// <summary>
    /// With QEMU's flat view: an enabled alias of a RAM region whose whole printed range QEMU renders as `rom`
    /// ranges of that region (within the address spaces whose tree holds the alias) is read-only.
    /// </summary>
    private static HashSet<Node> ReadonlyAliasesFromFlat(List<Block> blocks, string flat, string source)
    {
        var views = FlatViewDump.Parse(flat, source + " (flat)");
        var found = new HashSet<Node>();
        foreach (var b in blocks.Where(b => b.MemoryRegionName is null))
        {
            var ranges = views.Where(v => v.Spaces.Any(s => b.AddressSpaces.Contains(s.Name))).SelectMany(v => v.Ranges)
                .Select(r => (Range: RangeOf(r.Text), r.Name, Rom: r.Text.Contains(", rom): ", StringComparison.Ordinal) || r.Text.Contains("nv-rom): ", StringComparison.Ordinal)))
                .ToList();
            foreach (var alias in Walk(b.Root).Where(n => n.AliasTarget is not null && n.Enabled && n.Type == "ram"))
            {
                var inside = ranges.Where(r => r.Name == alias.AliasTarget && r.Range.Start >= alias.Start && r.Range.Last <= alias.Last).ToList();
                if (inside.Count > 0 && inside.All(r => r.Rom)) found.Add(alias);
            }
        }
        return found;
    }

    private static (ulong Start, ulong Last) RangeOf(string rangeText)
    {
        int dash = rangeText.IndexOf('-');
        return (ulong.Parse(rangeText[..dash], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                ulong.Parse(rangeText[(dash + 1)..rangeText.IndexOf(' ')], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    /// <summary>An alias whose target contains the alias (directly or through further aliases) would make
    /// QEMU's rendering recurse forever; the dump is then not one QEMU printed.</summary>
    private static void RejectAliasCycles(List<Node> roots, Dictionary<Node, Node> resolved, string source)
    {
        var done = new HashSet<Node>();
        var path = new List<Node>();
        var onPath = new HashSet<Node>();
        void Visit(Node n)
        {
            if (done.Contains(n)) return;
            if (!onPath.Add(n))
            {
                var cycle = path.Skip(path.IndexOf(n)).Where(resolved.ContainsKey).ToList();
                var alias = cycle.Count > 0 ? cycle[0] : n;
                throw new LayoutError($"{source}:{alias.Line}",
                    $"alias cycle: {string.Join(" -> ", cycle.Select(a => $"'{a.Name}' (line {a.Line}) @{a.AliasTarget}"))}");
            }
            path.Add(n);
            foreach (var c in n.Children) Visit(c);
            if (resolved.TryGetValue(n, out var target)) Visit(target);
            path.RemoveAt(path.Count - 1);
            onPath.Remove(n);
            done.Add(n);
        }
        foreach (var r in roots) Visit(r);
    }

    private static IEnumerable<Node> Walk(Node n)
    {
        yield return n;
        foreach (var c in n.Children)
            foreach (var d in Walk(c))
                yield return d;
    }

    private static (List<Block> Blocks, bool HasDisabled) ParseBlocks(string text, string source)
    {
        var blocks = new List<Block>();
        var lines = text.Replace("\r\n", "\n").Split('\n');
        bool hasDisabled = lines.Any(l => l.TrimEnd().EndsWith(" [disabled]", StringComparison.Ordinal)
                                          || OwnerSuffixRegex().Replace(l.TrimEnd(), "").EndsWith(" [disabled]", StringComparison.Ordinal));
        var pendingSpaces = new List<string>();
        string? pendingRegion = null;
        int headerLine = 0;
        var stack = new List<(int Level, Node Node)>();
        Node? root = null;

        Node Placeholder(string name, int line) => new()
        {
            Name = name,
            Type = "container",
            Nonvolatile = false,
            Start = 0,
            Size = 1,
            Priority = 0,
            Enabled = false,
            Line = line,
            Placeholder = true,
        };

        void Close()
        {
            if (root is null && (pendingSpaces.Count > 0 || pendingRegion is not null))
            {
                // Without -D a disabled region with no subregions prints nothing at all: the section is empty.
                if (hasDisabled)
                    throw new LayoutError($"{source}:{headerLine}", $"section '{pendingRegion ?? pendingSpaces[0]}' has no region tree");
                root = Placeholder(pendingRegion ?? UnprintedRegion, headerLine);
            }
            if (root is not null)
            {
                FitPlaceholders(root);
                blocks.Add(new Block(new List<string>(pendingSpaces), pendingRegion, root, headerLine));
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
                if (root is not null || pendingRegion is not null) Close();
                if (pendingSpaces.Count == 0) headerLine = lineNo;
                pendingSpaces.Add(line["address-space: ".Length..]);
                continue;
            }
            if (line.StartsWith("memory-region: ", StringComparison.Ordinal))
            {
                if (root is not null || pendingRegion is not null || pendingSpaces.Count > 0) Close();
                pendingRegion = line["memory-region: ".Length..];
                headerLine = lineNo;
                continue;
            }
            var m = LineRegex().Match(line);
            if (!m.Success) throw new LayoutError($"{source}:{lineNo}", $"not an `info mtree` line: '{Shorten(line)}'");
            if (pendingSpaces.Count == 0 && pendingRegion is null)
                throw new LayoutError($"{source}:{lineNo}", "region line outside an 'address-space:' or 'memory-region:' section");
            int indent = m.Groups["indent"].Length;
            if (indent % 2 != 0 || indent == 0)
                throw new LayoutError($"{source}:{lineNo}", $"indentation of {indent} spaces is not a tree level (2 spaces per level)");
            int level = indent / 2;

            ulong start = ParseHex(m.Groups["start"].Value, source, lineNo);
            ulong end = ParseHex(m.Groups["end"].Value, source, lineNo);
            if (end < start && !(start == 0 && end == ulong.MaxValue))
                throw new LayoutError($"{source}:{lineNo}", $"range {start:x}-{end:x} ends before it starts");
            UInt128 size = unchecked((UInt128)(end - start) + 1);   // MR_SIZE prints size-1; a 2^64 region prints UINT64_MAX
            string rest = OwnerSuffixRegex().Replace(m.Groups["rest"].Value, "");
            bool enabled = true;
            if (rest.EndsWith(" [disabled]", StringComparison.Ordinal))
            {
                enabled = false;
                rest = rest[..^" [disabled]".Length];
            }
            if (!int.TryParse(m.Groups["prio"].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int priority))
                throw new LayoutError($"{source}:{lineNo}", $"priority '{m.Groups["prio"].Value}' is out of range");
            var node = new Node
            {
                Name = rest,
                Type = m.Groups["type"].Value,
                Nonvolatile = m.Groups["nv"].Success,
                Start = start,
                Size = size,
                Priority = priority,
                Enabled = enabled,
                Line = lineNo,
            };
            if (rest.StartsWith("alias ", StringComparison.Ordinal))
            {
                var am = AliasRegex().Match(rest);
                if (!am.Success) throw new LayoutError($"{source}:{lineNo}", $"not an alias line: '{Shorten(line)}'");
                node.Name = am.Groups["name"].Value;
                node.AliasTarget = am.Groups["target"].Value;
                node.AliasOffset = ParseHex(am.Groups["aoff"].Value, source, lineNo);
            }

            while (stack.Count > 0 && stack[^1].Level >= level) stack.RemoveAt(stack.Count - 1);

            // Without -D, QEMU skips a disabled region's line but still prints its subregions one level
            // deeper (memory.c:mtree_print_mr). A line deeper than its parent's level + 1, or under a line
            // that cannot have subregions or does not contain it, belongs to such an unprinted region.
            if (!hasDisabled)
            {
                if (stack.Count > 0 && stack[^1].Level == level - 1 && !CanContain(stack[^1].Node, node))
                {
                    // The previous line is a sibling of the unprinted region: it gets a placeholder sibling.
                    var sibling = stack[^1];
                    stack.RemoveAt(stack.Count - 1);
                    var ph = Placeholder(UnprintedRegion, lineNo);
                    if (stack.Count > 0) stack[^1].Node.Children.Add(ph);
                    else throw new LayoutError($"{source}:{lineNo}", "a section has two root regions");
                    stack.Add((sibling.Level, ph));
                }
                int parentLevel = stack.Count > 0 ? stack[^1].Level : 0;
                while (parentLevel < level - 1)
                {
                    var ph = Placeholder(stack.Count == 0 && pendingRegion is not null ? pendingRegion : UnprintedRegion, lineNo);
                    if (stack.Count == 0)
                    {
                        if (root is not null) throw new LayoutError($"{source}:{lineNo}", "a section has two root regions");
                        root = ph;
                    }
                    else stack[^1].Node.Children.Add(ph);
                    parentLevel = stack.Count == 0 ? 1 : parentLevel + 1;
                    stack.Add((parentLevel, ph));
                }
            }
            else if (stack.Count > 0 ? stack[^1].Level != level - 1 : level != 1)
                throw new LayoutError($"{source}:{lineNo}", $"line is {level - (stack.Count > 0 ? stack[^1].Level : 0) - 1} level(s) deeper than a subregion of the line above");

            if (stack.Count == 0)
            {
                if (root is not null) throw new LayoutError($"{source}:{lineNo}", "a section has two root regions");
                root = node;
            }
            else stack[^1].Node.Children.Add(node);
            stack.Add((level, node));
        }
        Close();
        return (blocks, hasDisabled);
    }

    /// <summary>Whether a printed line can be the parent of the next, deeper one: aliases and RAM-like
    /// regions have no subregions in QEMU's machines, and subregions start inside their parent.</summary>
    private static bool CanContain(Node parent, Node child) =>
        !parent.Placeholder ? parent.AliasTarget is null && parent.Type is "i/o" or "container" && child.Start >= parent.Start && child.Start <= parent.Last
                            : true;

    /// <summary>A placeholder spans its printed subregions (its own range is not in the dump).</summary>
    private static void FitPlaceholders(Node n)
    {
        foreach (var c in n.Children) FitPlaceholders(c);
        if (!n.Placeholder || n.Children.Count == 0) return;
        ulong lo = n.Children.Min(c => c.Start);
        ulong hi = n.Children.Max(c => c.Last);
        n.Start = lo;
        n.Size = (UInt128)(hi - lo) + 1;
    }

    private static ulong ParseHex(string s, string source, int line) =>
        ulong.TryParse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new LayoutError($"{source}:{line}", $"'{s}' is not a 64-bit address");

    private static string Shorten(string line) => line.Length <= 120 ? line : line[..117] + "...";
}
