using Conformance.Model;

namespace Conformance.Benchmarks;

/// <summary>Layouts the benchmarks run on: a small machine (RAM, MMIO) and one with 1,000 regions.</summary>
public static class Layouts
{
    public static RegionSpec Region(string name, RegionKind kind, ulong size, ulong addr = 0, int priority = 0) =>
        new() { Name = name, Kind = kind, Size = size, Addr = addr, Priority = priority };

    public static LayoutSpec Machine() => new(
        new[]
        {
            new RegionSpec
            {
                Name = "system", Kind = RegionKind.Container, Size = (UInt128)1 << 64,
                Subregions = new[] { Region("ram", RegionKind.Ram, 64 << 20), Region("mmio", RegionKind.Io, 0x10000, 0xff000000) },
            },
        },
        new[] { new AddressSpaceSpec("memory", "system") },
        DirtyLogging.Default);

    /// <summary>1,000 regions: RAM and MMIO interleaved, some overlapping at a higher priority.</summary>
    public static LayoutSpec Thousand()
    {
        var subs = new List<RegionSpec>();
        for (int i = 0; i < 1000; i++)
            subs.Add(Region($"r{i}", i % 3 == 0 ? RegionKind.Io : RegionKind.Ram, 0x3000, (ulong)i * 0x2000, i % 7 == 0 ? 1 : 0));
        return new LayoutSpec(
            new[] { new RegionSpec { Name = "system", Kind = RegionKind.Container, Size = (UInt128)1 << 64, Subregions = subs } },
            new[] { new AddressSpaceSpec("memory", "system") },
            DirtyLogging.Default);
    }
}
