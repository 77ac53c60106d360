using Conformance.Model.Targets;

namespace Conformance.Model.Scenarios;

/// <summary>A page that became dirty during a step: client, RAM block, page index inside the block.</summary>
public readonly record struct DirtyPage(DirtyClient Client, string Block, ulong Page);

/// <summary>
/// What one operation did: its outcome and the observable effects in order (device callbacks, newly dirty
/// pages, bottom halves), and the state right after it (owner references, bounce usage, live mappings).
/// </summary>
public sealed record StepRecord(
    int Index,
    ScenarioOp Op,
    string? Skipped,
    MapOutcome? Map,
    UnmapResult? Unmap,
    byte[]? BytesRead,
    IReadOnlyList<string> Scheduled,
    IReadOnlyList<string> Ran,
    IReadOnlyList<DeviceAccess> DeviceAccesses,
    IReadOnlyList<DirtyPage> NewlyDirty,
    IReadOnlyDictionary<string, int> RefCounts,
    IReadOnlyDictionary<string, ulong> BounceBytesInUse,
    int LiveBounceMappings,
    IReadOnlyList<string> LiveMappings)
{
    /// <summary>For virtio operations: what the device did and its state afterwards.</summary>
    public VirtioStep? Virtio { get; init; }
}

/// <summary>The virtio side of a step: a popped element (or the error), used elements the driver saw
/// appear, and the queue's state after the step.</summary>
public sealed record VirtioStep(
    string? Popped,
    uint? PoppedHead,
    string? Error,
    IReadOnlyList<(uint Id, uint Len)> NewUsed,
    bool Broken,
    int InUse,
    ushort LastAvailIdx,
    ushort UsedIdx,
    int Interrupts,
    int InFlight,
    int DescriptorReads)
{
    /// <summary>The element a pop returned, with its pieces.</summary>
    public ElementRecord? Element { get; init; }
}
