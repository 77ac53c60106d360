namespace Conformance.Model;

/// <summary>Outcome of address_space_map: a mapping and its granted length, or null with length 0.</summary>
public readonly record struct MapResult(Mapping? Mapping, ulong Length, MapFailure Failure)
{
    public bool Succeeded => Mapping is not null;
}

public enum MapFailure
{
    None,
    /// <summary>*plen was 0: NULL without touching anything (docs/qemu-rules.md, M1).</summary>
    ZeroLength,
    /// <summary>No bounce space: Qemu72 buffer in use, or Qemu92 budget exhausted.</summary>
    NoBounceSpace,
}
