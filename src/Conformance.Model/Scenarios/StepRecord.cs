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
    MapResult? Map,
    UnmapResult? Unmap,
    byte[]? BytesRead,
    IReadOnlyList<string> Scheduled,
    IReadOnlyList<string> Ran,
    IReadOnlyList<DeviceAccess> DeviceAccesses,
    IReadOnlyList<DirtyPage> NewlyDirty,
    IReadOnlyDictionary<string, int> RefCounts,
    IReadOnlyDictionary<string, ulong> BounceBytesInUse,
    int LiveBounceMappings,
    IReadOnlyList<string> LiveMappings);
