namespace Conformance.Model;

/// <summary>
/// One range of a rendered FlatView (softmmu/memory.c: struct FlatRange): [Start, Start+Size) shows
/// <see cref="Region"/> from <see cref="OffsetInRegion"/> on. <see cref="Readonly"/> is inherited from
/// read-only aliases or ROMs on the path.
/// </summary>
public readonly record struct FlatRange(ulong Start, UInt128 Size, MemoryRegion Region, ulong OffsetInRegion, bool Readonly, bool RomdMode, bool Nonvolatile)
{
    public UInt128 End => (UInt128)Start + Size;
    public ulong Last => (ulong)(End - 1);
}
