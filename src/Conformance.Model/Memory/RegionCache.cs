namespace Conformance.Model;

/// <summary>A MemoryRegionCache as virtio uses it for rings and indirect tables: the referenced region and the bytes covered.</summary>
public readonly record struct RegionCache(MemoryRegion Region, ulong Length);
