namespace Conformance.Model;

/// <summary>The bounce buffers that exist at one instant: how many in the whole system, and per address
/// space the bytes allocated and, of those, the bytes whose budget unmap has already returned (UM-2).</summary>
public sealed record BounceSnapshot(int Buffers, IReadOnlyList<BounceSpaceSnapshot> Spaces);

/// <summary>One address space in a <see cref="BounceSnapshot"/>.</summary>
public sealed record BounceSpaceSnapshot(AddressSpace Space, long Allocated, long Freeing);
