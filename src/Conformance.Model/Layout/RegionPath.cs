namespace Conformance.Model;

/// <summary>
/// Explains why an address of an address space lands in a region: the path from the root through
/// containers and aliases to the topmost enabled region that terminates, and the regions that also
/// cover the address but lose (lower priority, or added earlier at equal priority). This is the naive
/// reading of softmmu/memory.c:render_memory_region, for people rather than for speed.
/// </summary>
public static class RegionPath
{
    public static string Explain(AddressSpace space, ulong addr)
    {
        var steps = new List<string>();
        var losers = new List<string>();
        var hit = Find(space.Root, addr - space.Root.Addr, steps, losers, 0);
        string path = string.Join(" > ", steps);
        if (hit is null) return $"0x{addr:x} is unassigned: {path} has no enabled region there (io_mem_unassigned: reads give 0, writes are dropped)";
        string text = $"0x{addr:x} is {hit.Value.Region.Name}+0x{hit.Value.Offset:x} ({hit.Value.Region.TypeName}), via {path}";
        if (losers.Count > 0) text += "; also covering it but losing: " + string.Join(", ", losers);
        return text;
    }

    private static (MemoryRegion Region, ulong Offset)? Find(MemoryRegion r, UInt128 rel, List<string> steps, List<string> losers, int depth)
    {
        if (depth > 16 || !r.Enabled || rel >= r.Size) return null;
        if (r.Kind == RegionKind.Alias)
        {
            steps.Add($"alias {r.Name} (+0x{(ulong)rel:x} -> {r.AliasTarget!.Name}+0x{(ulong)(rel + r.AliasOffset):x})");
            return Find(r.AliasTarget, rel + r.AliasOffset, steps, losers, depth + 1);
        }
        steps.Add(r.Name);
        // Subregions are kept in QEMU's order: higher priority first, later-added first among equals.
        var covering = r.Subregions.Where(c => c.Enabled && rel >= c.Addr && rel - c.Addr < c.Size).ToList();
        for (int i = 0; i < covering.Count; i++)
        {
            var c = covering[i];
            var mark = steps.Count;
            var hit = Find(c, rel - c.Addr, steps, losers, depth + 1);
            if (hit is not null)
            {
                foreach (var other in covering.Skip(i + 1))
                    losers.Add(other.Priority < c.Priority
                        ? $"{other.Name} (prio {other.Priority} < {c.Priority})"
                        : $"{other.Name} (same prio {other.Priority}, added before {c.Name})");
                return hit;
            }
            steps.RemoveRange(mark, steps.Count - mark);
            steps.Add($"[{c.Name} has nothing there]");
        }
        return r.Terminates ? (r, (ulong)rel) : null;
    }
}
