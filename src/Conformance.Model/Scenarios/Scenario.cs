namespace Conformance.Model.Scenarios;

/// <summary>A layout plus a sequence of operations: the suite's language for cases, regressions and replays.</summary>
public sealed record Scenario(Profile Profile, LayoutSpec Layout, IReadOnlyList<ScenarioOp> Ops)
{
    /// <summary>Number of regions in the layout (a size measure for shrinking bounds).</summary>
    public int RegionCount => Layout.AllRegions().Count();
}
