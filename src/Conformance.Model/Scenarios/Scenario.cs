namespace Conformance.Model.Scenarios;

/// <summary>A layout plus a sequence of operations: the suite's language for cases, regressions and replays.</summary>
public sealed record Scenario(Profile Profile, LayoutSpec Layout, IReadOnlyList<ScenarioOp> Ops)
{
    /// <summary>
    /// Operations that run in parallel after <see cref="Ops"/>, one list per thread: the cases of the
    /// concurrency properties (P20-P24), which run them on real threads and under controlled schedules.
    /// Empty for a sequential scenario; <see cref="ScenarioRunner"/> runs only sequential ones.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<ScenarioOp>> Threads { get; init; } = Array.Empty<IReadOnlyList<ScenarioOp>>();

    /// <summary>Whether the scenario has threads (a concurrency case).</summary>
    public bool IsConcurrent => Threads.Count > 0;

    /// <summary>For a regression file: the catalogue property the scenario is replayed against.</summary>
    public string? Property { get; init; }

    /// <summary>Free text: what the scenario shows.</summary>
    public string? Description { get; init; }

    /// <summary>Where the layout came from, when it is a file (a scenario file then names the file instead of
    /// inlining the layout).</summary>
    public LayoutReference? LayoutFrom { get; init; }

    /// <summary>Number of regions in the layout (a size measure for shrinking bounds).</summary>
    public int RegionCount => Layout.AllRegions().Count();
}

/// <summary>
/// A layout given by reference in a scenario file: an `info mtree` dump, QEMU's `info mtree -f` of the same
/// machine to settle what the tree cannot say, and bounce budgets for some address spaces.
/// </summary>
public sealed record LayoutReference(string Mtree, string? Flat, IReadOnlyDictionary<string, ulong> MaxBounceBufferSizes);
