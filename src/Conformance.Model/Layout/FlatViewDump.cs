using System.Text.RegularExpressions;

namespace Conformance.Model;

/// <summary>One address space as a flat-view dump lists it: ` AS "name", root: …`.</summary>
public sealed record FlatViewDumpSpace(string Name, string RootText);

/// <summary>One range line of a flat-view dump, normalised, and the name of the region it shows.</summary>
public sealed record FlatViewDumpRange(string Text, string Name);

/// <summary>One `FlatView #n` block: the address spaces sharing it, its root line and its ranges.</summary>
public sealed record FlatViewDumpView(IReadOnlyList<FlatViewDumpSpace> Spaces, string RootLine, IReadOnlyList<FlatViewDumpRange> Ranges, int Line);

/// <summary>
/// Reads the flat form of `info mtree -f` (memory.c:mtree_print_flatview), as QEMU prints it and as
/// <see cref="FlatViewText"/> prints the model's views, so that both can be compared line by line.
/// </summary>
public static partial class FlatViewDump
{
    [GeneratedRegex(@"^FlatView #\d+$")]
    private static partial Regex ViewHeader();

    [GeneratedRegex("^ AS \"(?<name>.*)\", root: (?<root>.+)$")]
    private static partial Regex SpaceLine();

    [GeneratedRegex(@"^  (?<range>[0-9a-f]+-[0-9a-f]+ \(prio -?\d+, [^)]*\): )(?<rest>.*)$")]
    private static partial Regex RangeLine();

    /// <summary>Owner suffixes (-o) and the accelerator names QEMU appends to ranges it has told an accelerator about.</summary>
    [GeneratedRegex(@"(?: (?:owner|parent):\{[^}]*\})+| orphan$| kvm$")]
    private static partial Regex Suffixes();

    public static IReadOnlyList<FlatViewDumpView> Parse(string text, string source = "flat")
    {
        var views = new List<FlatViewDumpView>();
        List<FlatViewDumpSpace>? spaces = null;
        string? rootLine = null;
        List<FlatViewDumpRange>? ranges = null;
        int start = 0;
        bool rendered = false;

        void Close(int lineNo)
        {
            if (spaces is null) return;
            if (spaces.Count == 0) throw new LayoutError($"{source}:{start}", "a FlatView with no address space");
            if (rootLine is null) throw new LayoutError($"{source}:{lineNo}", "a FlatView with no 'Root memory region:' line");
            if (!rendered && ranges!.Count == 0) throw new LayoutError($"{source}:{lineNo}", "a FlatView with neither ranges nor 'No rendered FlatView'");
            views.Add(new FlatViewDumpView(spaces, rootLine, ranges!, start));
            spaces = null;
        }

        var lines = text.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd();
            int lineNo = i + 1;
            if (line.Length == 0) continue;
            if (ViewHeader().IsMatch(line))
            {
                Close(lineNo);
                spaces = new List<FlatViewDumpSpace>();
                rootLine = null;
                ranges = new List<FlatViewDumpRange>();
                rendered = false;
                start = lineNo;
                continue;
            }
            if (spaces is null) throw new LayoutError($"{source}:{lineNo}", $"not inside a 'FlatView #' block: '{Shorten(line)}'");
            if (SpaceLine().Match(line) is { Success: true } s)
            {
                if (rootLine is not null) throw new LayoutError($"{source}:{lineNo}", "an 'AS' line after the view's root line");
                spaces.Add(new FlatViewDumpSpace(s.Groups["name"].Value, s.Groups["root"].Value));
                continue;
            }
            if (line.StartsWith(" Root memory region: ", StringComparison.Ordinal))
            {
                rootLine = line.Trim();
                continue;
            }
            if (line == "  No rendered FlatView")
            {
                rendered = true;
                continue;
            }
            if (line.StartsWith("  Dispatch", StringComparison.Ordinal) || line.StartsWith("    ", StringComparison.Ordinal))
                throw new LayoutError($"{source}:{lineNo}", "dispatch trees (-d) are not read: dump with `info mtree -f`");
            if (RangeLine().Match(line) is { Success: true } r && rootLine is not null)
            {
                string rest = Suffixes().Replace(r.Groups["rest"].Value, "");
                int at = rest.LastIndexOf(" @", StringComparison.Ordinal);
                string name = at >= 0 && Regex.IsMatch(rest[(at + 2)..], "^[0-9a-f]+$") ? rest[..at] : rest;
                ranges!.Add(new FlatViewDumpRange(r.Groups["range"].Value + rest, name));
                continue;
            }
            throw new LayoutError($"{source}:{lineNo}", $"not an `info mtree -f` line: '{Shorten(line)}'");
        }
        Close(lines.Length);
        if (views.Count == 0) throw new LayoutError($"{source}:1", "no 'FlatView #' section found (is this `info mtree -f`?)");
        return views;
    }

    private static string Shorten(string line) => line.Length <= 120 ? line : line[..117] + "...";
}

/// <summary>How one address space renders on both sides.</summary>
public sealed record FlatViewDifference(string Space, bool Equal, IReadOnlyList<string> OnlyQemu, IReadOnlyList<string> OnlyModel);

/// <summary>
/// Compares the model's flat views with QEMU's, per address space. QEMU prints views in hash-table order
/// and repeats address-space names that the model numbers ("ich9-ahci#2"), so spaces are matched by name
/// with the model's "#n" dropped, and views of one name are paired equal ones first.
/// </summary>
public static class FlatViewComparison
{
    public static IReadOnlyList<FlatViewDifference> Compare(IReadOnlyList<FlatViewDumpView> qemu, IReadOnlyList<FlatViewDumpView> model)
    {
        static string BaseName(string name) => Regex.Replace(name, @"#\d+$", "");
        static List<(string Name, List<string> Lines)> PerSpace(IReadOnlyList<FlatViewDumpView> views) =>
            views.SelectMany(v => v.Spaces.Select(s => (s.Name, Lines: new[] { $"AS \"{BaseName(s.Name)}\", root: {s.RootText}", v.RootLine }
                .Concat(v.Ranges.Count == 0 ? new[] { "No rendered FlatView" } : v.Ranges.Select(r => r.Text)).ToList()))).ToList();

        var theirs = PerSpace(qemu);
        var mine = PerSpace(model);
        var result = new List<FlatViewDifference>();
        foreach (var name in theirs.Select(t => t.Name).Concat(mine.Select(m => BaseName(m.Name))).Distinct().OrderBy(n => n, StringComparer.Ordinal))
        {
            var q = theirs.Where(t => t.Name == name).ToList();
            var m = mine.Where(t => BaseName(t.Name) == name).ToList();
            // Pair equal renderings first, then the rest in order.
            foreach (var mv in m.ToList())
            {
                int k = q.FindIndex(qv => qv.Lines.SequenceEqual(mv.Lines));
                if (k < 0) continue;
                result.Add(new FlatViewDifference(mv.Name, true, Array.Empty<string>(), Array.Empty<string>()));
                q.RemoveAt(k);
                m.Remove(mv);
            }
            // then views of address spaces with the same root (repeated names come in different orders), then the rest in order
            var pairedQ = new List<(string Name, List<string> Lines)>();
            var pairedM = new List<(string Name, List<string> Lines)>();
            foreach (var mv in m.ToList())
            {
                int k = q.FindIndex(qv => qv.Lines[0] == mv.Lines[0]);
                if (k < 0) continue;
                pairedQ.Add(q[k]);
                pairedM.Add(mv);
                q.RemoveAt(k);
                m.Remove(mv);
            }
            q.InsertRange(0, pairedQ);
            m.InsertRange(0, pairedM);
            for (int i = 0; i < Math.Max(q.Count, m.Count); i++)
            {
                var ql = i < q.Count ? q[i].Lines : new List<string>();
                var ml = i < m.Count ? m[i].Lines : new List<string>();
                string label = i < m.Count ? m[i].Name : name;
                if (i >= q.Count) ml = ml.Prepend("(QEMU has no such address space)").ToList();
                if (i >= m.Count) ql = ql.Prepend("(the model has no such address space)").ToList();
                result.Add(new FlatViewDifference(label, false, ql.Except(ml).ToList(), ml.Except(ql).ToList()));
            }
        }
        return result;
    }

    /// <summary>Per address space "equal" or the lines only one side has (- QEMU, + model).</summary>
    public static string Report(IReadOnlyList<FlatViewDifference> differences)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var d in differences)
        {
            sb.Append("AS \"").Append(d.Space).Append("\": ").Append(d.Equal ? "equal" : "differs").Append('\n');
            if (d.Equal) continue;
            foreach (var l in d.OnlyQemu) sb.Append("  - QEMU:  ").Append(l).Append('\n');
            foreach (var l in d.OnlyModel) sb.Append("  + model: ").Append(l).Append('\n');
        }
        int differing = differences.Count(d => !d.Equal);
        sb.Append(differing == 0
            ? $"all {differences.Count} address spaces render as QEMU renders them\n"
            : $"{differing} of {differences.Count} address spaces render differently from QEMU\n");
        return sb.ToString();
    }
}
