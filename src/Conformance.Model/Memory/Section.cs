namespace Conformance.Model;

/// <summary>
/// Result of translating one address (softmmu/physmem.c:flatview_translate without IOMMUs): the terminal
/// region, the offset inside it (xlat), and how many bytes remain before the flat range ends.
/// A hole resolves to <see cref="MemoryRegion.Unassigned"/> with xlat equal to the address.
/// </summary>
public readonly record struct Section(MemoryRegion Region, ulong Xlat, UInt128 RemainingInRange, FlatRange? Range)
{
    public bool IsUnassigned => ReferenceEquals(Region, MemoryRegion.Unassigned);
}
