using System.Text;

namespace Conformance.Model;

/// <summary>
/// Prints flat views in the text format of QEMU's `info mtree -f` (softmmu/memory.c:mtree_print_flatview).
/// Address spaces share a FlatView when their roots resolve to the same flat-view root, as in QEMU.
/// QEMU prints the views in GHashTable order (pointer hashes); the model prints them in the order of
/// their first address space.
/// </summary>
public static class FlatViewText
{
    public static string Print(IReadOnlyList<AddressSpace> spaces, MtreeDialect dialect = MtreeDialect.IoOnly)
    {
        var groups = new List<(MemoryRegion? Root, List<AddressSpace> Spaces)>();
        foreach (var space in spaces)
        {
            var root = space.View.Root;
            var group = groups.FindIndex(g => ReferenceEquals(g.Root, root));
            if (group < 0) groups.Add((root, new List<AddressSpace> { space }));
            else groups[group].Spaces.Add(space);
        }

        var sb = new StringBuilder();
        for (int n = 0; n < groups.Count; n++)
        {
            var (root, members) = groups[n];
            sb.Append("FlatView #").Append(n).Append('\n');
            foreach (var space in members)
            {
                sb.Append(" AS \"").Append(space.Name).Append("\", root: ").Append(space.Root.Name);
                if (space.Root.Kind == RegionKind.Alias) sb.Append(", alias ").Append(space.Root.AliasTarget!.Name);
                sb.Append('\n');
            }
            sb.Append(" Root memory region: ").Append(root?.Name ?? "(none)").Append('\n');
            var view = members[0].View;
            if (view.Ranges.Count == 0)
            {
                sb.Append("  No rendered FlatView\n\n");
                continue;
            }
            foreach (var r in view.Ranges) sb.Append("  ").Append(Line(r, dialect)).Append('\n');
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>One range: start-end (prio, type): name[ @offset].</summary>
    public static string Line(FlatRange r, MtreeDialect dialect = MtreeDialect.IoOnly)
    {
        ulong last = unchecked(r.Start + (ulong)(r.Size - 1));
        string type = r.Readonly ? "rom" : r.Region.TypeWord(dialect);
        string nv = r.Nonvolatile ? "nv-" : "";
        string offset = r.OffsetInRegion != 0 ? $" @{r.OffsetInRegion:x16}" : "";
        return $"{r.Start:x16}-{last:x16} (prio {r.Region.Priority}, {nv}{type}): {r.Region.Name}{offset}";
    }
}
