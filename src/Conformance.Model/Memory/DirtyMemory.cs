namespace Conformance.Model;

/// <summary>
/// The per-client dirty bitmaps over ram_addr pages (include/exec/ram_addr.h). The model starts with
/// every page clean, as right after a migration bitmap sync.
/// For the code client the model records the pages whose translated code a write invalidates
/// (tb_invalidate_phys_range ends in tlb_unprotect_code setting the bit), i.e. as if every page held code.
/// </summary>
public sealed class DirtyMemory
{
    private readonly HashSet<ulong>[] _pages = { new(), new(), new() };
    private readonly List<(DirtyClient Client, ulong Page)> _newlyDirty = new();
    // QEMU sets the bits atomically (bitmap_set_atomic); one short lock gives the same result
    private readonly ShortLock _lock = new();

    /// <summary>Every (client, ram_addr page) in the order it went from clean to dirty.</summary>
    public IReadOnlyList<(DirtyClient Client, ulong Page)> NewlyDirtyJournal => _newlyDirty;

    public bool IsDirty(DirtyClient client, ulong ramAddrPage) => _pages[(int)client].Contains(ramAddrPage);

    public IReadOnlyCollection<ulong> Pages(DirtyClient client) => _pages[(int)client];

    /// <summary>
    /// softmmu/physmem.c:invalidate_and_set_dirty → cpu_physical_memory_set_dirty_range: pages
    /// floor(start/P) .. ceil((start+length)/P)-1. Note the edge QEMU has: a zero length at an unaligned
    /// start still covers the page containing start (registered finding F-DMA-1).
    /// </summary>
    public static (ulong First, ulong EndExclusive) PageSpan(ulong ramAddrStart, ulong length)
    {
        ulong page = ramAddrStart / ProfileFacts.TargetPageSize;
        UInt128 end = ((UInt128)ramAddrStart + length + ProfileFacts.TargetPageSize - 1) / ProfileFacts.TargetPageSize;
        return (page, (ulong)end);
    }

    internal void SetDirty(ulong ramAddrStart, ulong length, IReadOnlyList<DirtyClient> clients)
    {
        if (clients.Count == 0) return;
        var (first, end) = PageSpan(ramAddrStart, length);
        _lock.Enter();
        try
        {
            foreach (var client in clients)
                for (ulong p = first; p < end; p++)
                    if (_pages[(int)client].Add(p)) _newlyDirty.Add((client, p));
        }
        finally { _lock.Exit(); }
    }
}
