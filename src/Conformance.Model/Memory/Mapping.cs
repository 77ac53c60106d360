namespace Conformance.Model;

/// <summary>
/// What address_space_map handed out (docs/qemu-rules.md, REC-1): the handle the caller later passes to unmap.
/// </summary>
public sealed class Mapping
{
    internal Mapping(int id, AddressSpace addressSpace, ulong addr, ulong length, bool isWrite, MappingKind kind,
        MemoryRegion region, ulong xlat, BounceBuffer? bounce)
    {
        Id = id;
        AddressSpace = addressSpace;
        Addr = addr;
        Length = length;
        IsWrite = isWrite;
        Kind = kind;
        Region = region;
        Xlat = xlat;
        Bounce = bounce;
    }

    public int Id { get; }
    public AddressSpace AddressSpace { get; }
    public ulong Addr { get; }
    public ulong Length { get; }
    public bool IsWrite { get; }
    public MappingKind Kind { get; }

    /// <summary>The region whose owner the mapping references (the first region, for a bounce).</summary>
    public MemoryRegion Region { get; }

    /// <summary>Direct: offset of the mapping start inside the region's RAMBlock.</summary>
    public ulong Xlat { get; }

    public BounceBuffer? Bounce { get; }
    public bool Live => Volatile.Read(ref _live) != 0;

    private int _live = 1;

    /// <summary>Marks the mapping unmapped; false if it already was (so two racing unmaps do the work once).</summary>
    internal bool TryRetire() => Interlocked.Exchange(ref _live, 0) == 1;

    public override string ToString() => $"#{Id} {AddressSpace.Name} 0x{Addr:x}+{Length} {(IsWrite ? "write" : "read")} {Kind}";
}
