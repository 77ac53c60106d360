namespace Conformance.Model;

/// <summary>
/// Immutable description of a region (the scenario language's layout). A <see cref="MemorySystem"/>
/// instantiates fresh, mutable regions from it, so one spec can back many independent model runs.
/// </summary>
public sealed record RegionSpec
{
    public required string Name { get; init; }
    public required RegionKind Kind { get; init; }
    public required UInt128 Size { get; init; }
    public ulong Addr { get; init; }
    public int Priority { get; init; }
    public bool Enabled { get; init; } = true;
    public bool Readonly { get; init; }
    public bool RomdMode { get; init; } = true;
    public bool LogVga { get; init; }
    public bool Nonvolatile { get; init; }
    /// <summary>An i/o region with subregions that still terminates (QEMU's "io", "rtc"); `info mtree` does not show this bit.</summary>
    public bool Terminates { get; init; }
    public string? AliasTarget { get; init; }
    /// <summary>Where several regions carry <see cref="AliasTarget"/>'s name (two devices of one type): which
    /// one, counting from 0 in declaration order (parentless regions in order, each depth first).</summary>
    public int? AliasTargetOccurrence { get; init; }
    public ulong AliasOffset { get; init; }
    /// <summary>Owner object name; regions naming the same owner share its reference count. Defaults to the region name.</summary>
    public string? Owner { get; init; }
    public AccessRules? Access { get; init; }
    /// <summary>Seed of the initial byte pattern; defaults to a hash of the name.</summary>
    public uint? Seed { get; init; }
    public IReadOnlyList<RegionSpec> Subregions { get; init; } = Array.Empty<RegionSpec>();

    public IEnumerable<RegionSpec> SelfAndDescendants()
    {
        yield return this;
        foreach (var s in Subregions)
            foreach (var d in s.SelfAndDescendants())
                yield return d;
    }
}

/// <summary>
/// An address space over a root region, named by <see cref="Root"/> or, where names repeat (every PCI
/// device's "bus master container"), by <see cref="RootIndex"/> into <see cref="LayoutSpec.Regions"/>.
/// <see cref="MaxBounceBufferSize"/> applies to <see cref="Profile.Qemu92"/>.
/// </summary>
public sealed record AddressSpaceSpec(string Name, string Root, ulong MaxBounceBufferSize = ProfileFacts.DefaultMaxBounceBufferSize, int? RootIndex = null);

/// <summary>
/// A whole layout: parentless region trees (address-space roots and detached alias targets such as
/// "pc.ram"), the address spaces, and the active dirty clients.
/// </summary>
public sealed record LayoutSpec(IReadOnlyList<RegionSpec> Regions, IReadOnlyList<AddressSpaceSpec> AddressSpaces, DirtyLogging Dirty)
{
    public IEnumerable<RegionSpec> AllRegions() => Regions.SelfAndDescendantsOfAll();
}

internal static class RegionSpecListExtensions
{
    public static IEnumerable<RegionSpec> SelfAndDescendantsOfAll(this IEnumerable<RegionSpec> roots) =>
        roots.SelectMany(r => r.SelfAndDescendants());
}
