using Conformance.Model.Scenarios;

namespace Conformance.Model.Targets;

/// <summary>
/// Something that runs scenarios and reports what happened as plain data: the reference model, a broken
/// variant of it, a QEMU binary, later a vhost-user back-end. Properties judge the observations and know
/// nothing else about the target; tests and the command line choose which target they run on.
/// </summary>
public interface ITarget
{
    /// <summary>For reports: "reference model", "broken variant SkipUnref", "QEMU 10.0.13 (modern)".</summary>
    string Name { get; }

    Capabilities Capabilities { get; }

    /// <summary>The command-line options that select this target on `conformance check` and `replay`
    /// ("" for the reference model, "--variant SkipUnref", "--target qemu --qemu PATH …"), so that a
    /// printed reproduce command runs exactly what failed.</summary>
    string CommandLine { get; }

    /// <summary>True for the reference model: only its failures are saved to the regression corpus.</summary>
    bool IsReference { get; }

    /// <summary>The one machine this target runs, for generators to write scenarios on (null for a target
    /// that runs any layout: <see cref="Capabilities.AnyLayout"/>).</summary>
    TargetMachine? Machine { get; }

    /// <summary>A fresh instance of the target on <paramref name="layout"/>, ready for operations.</summary>
    ITargetSession Open(Profile profile, LayoutSpec layout);
}

/// <summary>One fresh instance of a target, driven one operation at a time (a property can decide the
/// next operation from what the last one did, as a device retrying a shorter map would).</summary>
public interface ITargetSession : IDisposable
{
    /// <summary>Runs one operation and says what it did.</summary>
    StepRecord Apply(ScenarioOp op);

    /// <summary>Everything so far: the operations applied, their steps, and the state now.</summary>
    Observation Observe();

    /// <summary>The flat view of every address space now (needs <see cref="Capabilities.FlatViews"/>).</summary>
    IReadOnlyDictionary<string, IReadOnlyList<FlatRangeRecord>> FlatViews();

    /// <summary>Region contents and dirty bitmaps now (needs <see cref="Capabilities.MemoryContents"/>).</summary>
    MemoryContents Contents();
}

/// <summary>
/// The fixed machine of a target (a real VMM): its layout as the model sees it, where its virtio-blk device
/// is and what its driver negotiates, and where a scenario may put buffers of its own. A generator writing
/// scenarios for this target uses these, so that the target can run them and a property's oracle, reading
/// the scenario's layout, sees the machine the target really is.
/// </summary>
public sealed record TargetMachine(
    LayoutSpec Layout,
    /// <summary>The address space the device DMAs through.</summary>
    string Space,
    int QueueSize,
    ulong Desc,
    ulong Avail,
    ulong Used,
    int DiskSectors,
    string Serial,
    /// <summary>Whether a scenario may negotiate EVENT_IDX, indirect descriptors and VERSION_1.</summary>
    bool EventIdx,
    bool Indirect,
    bool Version1,
    /// <summary>Guest RAM free for a scenario's headers, buffers and status bytes: [start, end).</summary>
    (ulong Start, ulong End) FreeRam,
    /// <summary>Plain MMIO storage a scenario may put buffers in (bounced), if the machine has some: [start, end).</summary>
    (ulong Start, ulong End)? MmioStorage)
{
    /// <summary>The registered findings (ids such as "F-BLK-2", docs/findings.md) in which this target is known
    /// to deviate from the reference: generators avoid what such a finding makes meaningless, and comparisons
    /// leave out what it makes unspecified. Empty for a faithful target.</summary>
    public IReadOnlyList<string> Deviations { get; init; } = Array.Empty<string>();

    /// <summary>The files the layout was read from, for scenario files to name instead of inlining it (null: inline).</summary>
    public Scenarios.LayoutReference? LayoutFrom { get; init; }

    /// <summary>Whether the target has a registered deviation (<see cref="Deviations"/>).</summary>
    public bool Deviates(string finding) => Deviations.Contains(finding);
}

/// <summary>A target whose instances live in this process, so several threads can drive one at once.</summary>
public interface IInProcessTarget : ITarget
{
    MemorySystem NewSystem(LayoutSpec layout, Profile profile);

    Virtio.VirtioDevice NewVirtioDevice(MemorySystem memory, AddressSpace dmaAs, int queues, ulong features);
}

public static class TargetRuns
{
    /// <summary>Runs a whole scenario on a fresh instance.</summary>
    public static Observation Run(this ITarget target, Scenario scenario)
    {
        if (target is ModelTarget model) return model.RunWhole(scenario);
        using var session = target.Open(scenario.Profile, scenario.Layout);
        foreach (var op in scenario.Ops) session.Apply(op);
        return session.Observe() with { Scenario = scenario };
    }

    /// <summary>Runs the scenario, then unmaps whatever is still live and runs the bottom halves: the
    /// state a balanced caller would leave.</summary>
    public static Observation RunAndRelease(this ITarget target, Scenario scenario)
    {
        if (target is ModelTarget model) return model.RunAndReleaseWhole(scenario);
        using var session = target.Open(scenario.Profile, scenario.Layout);
        foreach (var op in scenario.Ops) session.Apply(op);
        foreach (var id in session.Observe().Memory.LiveIds) session.Apply(new UnmapOp(id, null));
        session.Apply(new RunBottomHalvesOp());
        return session.Observe();
    }
}

/// <summary>A scenario, or one operation of it, that the target cannot run (not a failure of the target:
/// the scenario is outside what it can be asked to do). The message says why.</summary>
public sealed class TargetCannotRun(string message) : Exception(message);

/// <summary>
/// A target that, by a known deviation, keeps state across scenarios that a faithful target would not (QEMU
/// releases with F-QEMU-2 keep the bounce bytes of failed pops for the life of the process). A comparison with
/// the reference tells it what the reference saw the scenario do, so it can start the next scenario afresh
/// when the scenario did what leaves such state behind.
/// </summary>
public interface IKeepsStateAcrossScenarios
{
    void AfterReference(Observation reference);
}
