using Conformance.Model.Scenarios;
using Conformance.Model.Virtio;

namespace Conformance.Model.Targets;

/// <summary>
/// What a target did with a scenario, as plain data: per step (<see cref="StepRecord"/>) the outcome and
/// its effects, and the state at the end. Properties judge this and nothing else; what a target cannot
/// show it leaves empty and says so in its <see cref="Capabilities"/>.
/// </summary>
public sealed record Observation(
    string Target,
    Scenario Scenario,
    IReadOnlyList<StepRecord> Steps,
    IReadOnlyDictionary<string, MappingRecord> Mappings,
    MemoryEnd Memory,
    VirtioEnd? Virtio)
{
    /// <summary>Why the target stopped answering part-way (a QEMU that crashed or hung, with its stderr tail);
    /// null when it ran the whole scenario. Steps after the failure are recorded as skipped.</summary>
    public string? Failure { get; init; }
}

/// <summary>A mapping address_space_map handed out. <see cref="Id"/> is the scenario's name for it, or
/// "#n" for a mapping a device model made (a popped element's piece).</summary>
public sealed record MappingRecord(string Id, string Space, ulong Addr, ulong Length, bool IsWrite, MappingKind Kind, string Region, ulong Xlat)
{
    internal static MappingRecord Of(string id, Mapping m) =>
        new(id, m.AddressSpace.Name, m.Addr, m.Length, m.IsWrite, m.Kind, m.Region.Name, m.Xlat);

    public override string ToString() => $"{Id} {Space} 0x{Addr:x}+{Length} {(IsWrite ? "write" : "read")} {Kind}";
}

/// <summary>What address_space_map returned: a mapping and its granted length, or NULL and why.</summary>
public readonly record struct MapOutcome(MappingRecord? Mapping, ulong Length, MapFailure Failure)
{
    public bool Succeeded => Mapping is not null;
}

/// <summary>The memory side at the end of a run.</summary>
public sealed record MemoryEnd(
    IReadOnlyDictionary<string, int> RefCounts,
    /// <summary>Every live mapping, the scenario's and the device models' (popped elements' pieces).</summary>
    IReadOnlyList<MappingRecord> LiveMappings,
    /// <summary>The scenario's own live mappings, by its ids, in ordinal order.</summary>
    IReadOnlyList<string> LiveIds,
    IReadOnlyDictionary<string, ulong> BounceBytesInUse,
    /// <summary>Pages dirty per client, as (RAM block, page index inside it), in order.</summary>
    IReadOnlyDictionary<DirtyClient, IReadOnlyList<(string Block, ulong Page)>> DirtyPages,
    /// <summary>Bytes written back to memory that nobody produced (a bounce buffer's unwritten tail).</summary>
    long UnproducedBytesWrittenBack,
    IReadOnlyList<string> PendingBottomHalves);

/// <summary>The virtio side at the end of a run, when the scenario set a device up.</summary>
public sealed record VirtioEnd(
    byte Status,
    bool Broken,
    bool Version1,
    IReadOnlyList<string> Errors,
    int Interrupts,
    ushort LastAvailIdx,
    ushort UsedIdx,
    int InUse,
    int InFlight,
    /// <summary>The device's writes to the used ring, in order.</summary>
    IReadOnlyList<RingWrite> RingWrites,
    /// <summary>The used ring as the guest reads it back at the end: slots 0 .. min(used.idx, size) - 1, (id, len).</summary>
    IReadOnlyList<(uint Id, uint Len)> Used,
    byte[] Disk,
    /// <summary>Bounce bytes that failed pops took and never gave back (KD-2 in docs/qemu-versions.md).</summary>
    ulong BounceBytesUndone);

/// <summary>A popped element: its head and its device-readable (out) and device-writable (in) pieces.</summary>
public sealed record ElementRecord(uint Head, IReadOnlyList<SegmentRecord> Out, IReadOnlyList<SegmentRecord> In)
{
    public ulong InBytes => (ulong)In.Sum(e => (decimal)e.Length);
}

/// <summary>One piece of a popped element: the guest address, its length and the mapping behind it.</summary>
public sealed record SegmentRecord(ulong Addr, ulong Length, MappingRecord Mapping);

/// <summary>One range of an address space's flat view: [Start, Start+Size) shows Region from Offset on.</summary>
public sealed record FlatRangeRecord(ulong Start, UInt128 Size, string Region, ulong Offset, bool Readonly);

/// <summary>Region contents (pages that differ from the initial image, as hex) and dirty bitmaps.</summary>
public sealed record MemoryContents(
    /// <summary>Per region with contents (RAM or device storage), in the layout's order.</summary>
    IReadOnlyList<(string Region, IReadOnlyList<(ulong Page, string Hex)> Pages)> ModifiedPages,
    IReadOnlyDictionary<DirtyClient, IReadOnlyList<ulong>> Dirty);
