namespace Conformance.Model.Scenarios;

/// <summary>The result of running a scenario on a model instance.</summary>
public sealed class ScenarioRun
{
    internal ScenarioRun(Scenario scenario, MemorySystem system, IReadOnlyList<StepRecord> steps, IReadOnlyDictionary<string, Mapping> mappings)
    {
        Scenario = scenario;
        System = system;
        Steps = steps;
        Mappings = mappings;
    }

    public Scenario Scenario { get; }

    /// <summary>The model instance in its final state.</summary>
    public MemorySystem System { get; }

    public IReadOnlyList<StepRecord> Steps { get; }

    /// <summary>Every mapping the scenario obtained, by id (live or not).</summary>
    public IReadOnlyDictionary<string, Mapping> Mappings { get; }

    /// <summary>The virtio device, its virtio-blk front and the driver, if the scenario set one up.</summary>
    public VirtioContext? Virtio { get; internal set; }
}
