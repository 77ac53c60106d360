namespace Conformance.Model.Scenarios;

/// <summary>A layout plus a sequence of operations: the suite's language for cases, regressions and replays.</summary>
public sealed record Scenario(Profile Profile, LayoutSpec Layout, IReadOnlyList<ScenarioOp> Ops)
{
    /// <summary>For a regression file: the catalogue property the scenario is replayed against.</summary>
    public string? Property { get; init; }

    /// <summary>Free text: what the scenario shows.</summary>
    public string? Description { get; init; }

    /// <summary>Number of regions in the layout (a size measure for shrinking bounds).</summary>
    public int RegionCount => Layout.AllRegions().Count();
}
