namespace Conformance.Model;

/// <summary>
/// A region tree flattened into non-overlapping ranges exactly as softmmu/memory.c renders it
/// (generate_memory_topology → render_memory_region → flatview_simplify).
/// </summary>
public sealed class FlatView
{
    private readonly FlatRange[] _ranges;
    private readonly ulong[] _starts;

    private FlatView(MemoryRegion? root, List<FlatRange> ranges)
    {
        Root = root;
        _ranges = ranges.ToArray();
        _starts = _ranges.Select(r => r.Start).ToArray();
    }

    /// <summary>The region rendering started from (memory_region_get_flatview_root), null if nothing renders.</summary>
    public MemoryRegion? Root { get; }

    public IReadOnlyList<FlatRange> Ranges => _ranges;

    /// <summary>Renders the address space whose root is <paramref name="asRoot"/>.</summary>
    public static FlatView Render(MemoryRegion asRoot, bool ignorePriority = false)
    {
        var root = FlatViewRoot(asRoot);
        var ranges = new List<FlatRange>();
        if (root is not null)
        {
            RenderRegion(ranges, root, 0, 0, (Int128)1 << 64, false, false, ignorePriority);
            Simplify(ranges);
        }
        return new FlatView(root, ranges);
    }

    /// <summary>
    /// softmmu/memory.c:memory_region_get_flatview_root: skip enabled aliases that cover their whole
    /// target from offset 0 and containers with a single enabled child at 0 covering them; null when a
    /// container has no enabled child or the region is disabled.
    /// </summary>
    public static MemoryRegion? FlatViewRoot(MemoryRegion mr)
    {
        while (mr.Enabled)
        {
            if (mr.Kind == RegionKind.Alias)
            {
                if (mr.AliasOffset == 0 && mr.Size >= mr.AliasTarget!.Size)
                {
                    mr = mr.AliasTarget;
                    continue;
                }
            }
            else if (!mr.Terminates)
            {
                int found = 0;
                MemoryRegion? next = null;
                foreach (var child in mr.Subregions)
                {
                    if (!child.Enabled) continue;
                    if (++found > 1)
                    {
                        next = null;
                        break;
                    }
                    // Stryker disable once Equality : equivalent for translation: it only decides which region a FlatView is keyed by (views shared between address spaces), not its ranges
                    if (child.Addr == 0 && mr.Size >= child.Size) next = child;
                }
                if (found == 0) return null;
                if (next is not null)
                {
                    mr = next;
                    continue;
                }
            }
            return mr;
        }
        return null;
    }

    // Int128 arithmetic mirrors QEMU's: base can go "negative" through alias offsets.
    private static void RenderRegion(List<FlatRange> view, MemoryRegion mr, Int128 @base, Int128 clipStart, Int128 clipSize,
        bool readOnly, bool nonvolatile, bool ignorePriority)
    {
        if (!mr.Enabled) return;
        @base += mr.Addr;
        readOnly |= mr.Readonly || mr.Kind == RegionKind.Rom;
        nonvolatile |= mr.Nonvolatile;

        // clip = intersection(clip, [base, base + size))
        Int128 start = Int128.Max(@base, clipStart);
        Int128 end = Int128.Min(@base + (Int128)mr.Size, clipStart + clipSize);
        if (end <= start) return;
        clipStart = start;
        clipSize = end - start;

        if (mr.Kind == RegionKind.Alias)
        {
            @base -= mr.AliasTarget!.Addr;
            @base -= mr.AliasOffset;
            RenderRegion(view, mr.AliasTarget, @base, clipStart, clipSize, readOnly, nonvolatile, ignorePriority);
            // Stryker disable once Statement : equivalent, an alias has no subregions to fall through to
            return;
        }

        // Stryker disable once all : broken-variant code (IgnorePriority), off in the reference model
        IEnumerable<MemoryRegion> children = ignorePriority
            ? mr.Subregions.OrderBy(c => c.InsertionIndex)   // a deliberately wrong order, for the broken-variant test
            : mr.Subregions;
        foreach (var child in children)
            RenderRegion(view, child, @base, clipStart, clipSize, readOnly, nonvolatile, ignorePriority);

        if (!mr.Terminates) return;

        ulong offsetInRegion = (ulong)(clipStart - @base);
        Int128 cursor = clipStart;
        Int128 remain = clipSize;
        // Fill the gaps the subregions (rendered first) left, in address order.
        int i = 0;
        for (; i < view.Count && remain != 0; ++i)
        {
            Int128 rangeStart = view[i].Start;
            Int128 rangeEnd = rangeStart + (Int128)view[i].Size;
            if (cursor >= rangeEnd) continue;
            if (cursor < rangeStart)
            {
                Int128 now = Int128.Min(remain, rangeStart - cursor);
                view.Insert(i, Make(mr, cursor, now, offsetInRegion, readOnly, nonvolatile));
                ++i;
                cursor += now;
                offsetInRegion += (ulong)now;
                remain -= now;
            }
            Int128 skip = Int128.Min(cursor + remain, rangeEnd) - cursor;
            cursor += skip;
            offsetInRegion += (ulong)skip;
            remain -= skip;
        }
        if (remain != 0) view.Insert(i, Make(mr, cursor, remain, offsetInRegion, readOnly, nonvolatile));
    }

    private static FlatRange Make(MemoryRegion mr, Int128 start, Int128 size, ulong offset, bool readOnly, bool nonvolatile) =>
        new((ulong)start, (UInt128)size, mr, offset, readOnly, mr.RomdMode, nonvolatile);

    /// <summary>softmmu/memory.c:flatview_simplify / can_merge.</summary>
    private static void Simplify(List<FlatRange> ranges)
    {
        int i = 0;
        while (i < ranges.Count)
        {
            int j = i + 1;
            var merged = ranges[i];
            while (j < ranges.Count && CanMerge(merged, ranges[j]))
            {
                merged = merged with { Size = merged.Size + ranges[j].Size };
                ++j;
            }
            ranges[i] = merged;
            ranges.RemoveRange(i + 1, j - i - 1);
            ++i;
        }
    }

    private static bool CanMerge(FlatRange a, FlatRange b) =>
        a.End == b.Start
        && ReferenceEquals(a.Region, b.Region)
        && (UInt128)a.OffsetInRegion + a.Size == b.OffsetInRegion
        && a.Region.LogVga == b.Region.LogVga
        && a.RomdMode == b.RomdMode
        && a.Readonly == b.Readonly
        && a.Nonvolatile == b.Nonvolatile;

    /// <summary>
    /// address_space_translate_internal: the section containing <paramref name="addr"/>; a hole resolves
    /// to io_mem_unassigned, whose "section" spans the whole address space (xlat = addr).
    /// </summary>
    public Section Translate(ulong addr)
    {
        int i = Array.BinarySearch(_starts, addr);
        if (i < 0) i = ~i - 1;
        if (i >= 0)
        {
            var r = _ranges[i];
            if (addr - r.Start < r.Size)
                return new Section(r.Region, r.OffsetInRegion + (addr - r.Start), r.Size - (addr - r.Start), r);
        }
        return new Section(MemoryRegion.Unassigned, addr, ((UInt128)1 << 64) - addr, null);
    }
}
