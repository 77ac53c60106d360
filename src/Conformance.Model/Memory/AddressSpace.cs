namespace Conformance.Model;

/// <summary>
/// An AddressSpace: a name, a root region and its current FlatView. Under <see cref="Profile.Qemu92"/> it
/// also carries the bounce budget (as->bounce_buffer_size / max_bounce_buffer_size) and its own list of
/// map clients (system/physmem.c).
/// </summary>
public sealed class AddressSpace
{
    private FlatView? _view;

    public AddressSpace(string name, MemoryRegion root, ulong maxBounceBufferSize, bool ignorePriority)
    {
        Name = name;
        Root = root;
        MaxBounceBufferSize = maxBounceBufferSize;
        IgnorePriority = ignorePriority;
    }

    public string Name { get; }
    public MemoryRegion Root { get; }
    private bool IgnorePriority { get; }

    public FlatView View => _view ??= FlatView.Render(Root, IgnorePriority);

    /// <summary>Forget the rendered view after a topology change (memory_region_transaction_commit).</summary>
    public void Invalidate() => _view = null;

    /// <summary>Qemu92: the byte budget for concurrent bounce buffers.</summary>
    public ulong MaxBounceBufferSize { get; }

    /// <summary>Qemu92: bounce bytes reserved against the budget (as->bounce_buffer_size), updated with a
    /// compare-and-swap loop at map and an atomic subtraction at unmap.</summary>
    public ulong BounceBufferSize => Volatile.Read(ref Reserved);

    internal ulong Reserved;

    /// <summary>Bytes of bounce buffers of this address space that exist right now (allocated at map after
    /// the reservation, freed at unmap before the release): what the budget is meant to bound.</summary>
    public long BounceBytesAllocated => Interlocked.Read(ref Allocated);

    internal long Allocated;

    /// <summary>Qemu92: bytes of bounce buffers of this address space whose budget unmap has already returned
    /// but which are not yet freed (system/physmem.c:address_space_unmap returns the budget first, UM-2).</summary>
    public long BounceBytesFreeing => Interlocked.Read(ref Freeing);

    internal long Freeing;

    internal MapClientList MapClients { get; } = new();

    public override string ToString() => Name;
}
