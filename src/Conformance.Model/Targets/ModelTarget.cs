using Conformance.Model.Scenarios;
using Conformance.Model.Virtio;

namespace Conformance.Model.Targets;

/// <summary>
/// The reference model as a target, or one of its broken variants: deterministic, in this process, with
/// every capability (it can show what a real VMM keeps to itself: references, bounce bytes, dirty bits).
/// </summary>
public sealed class ModelTarget : IInProcessTarget
{
    public ModelTarget(Variant variant) : this(variant, null) { }

    /// <param name="variant">The deliberate bugs switched on.</param>
    /// <param name="regionImages">Initial contents of RAM or ROM regions by name, as a real machine has them
    /// (QEMU's BIOS in pc.bios, say), so that a device reading them sees the same bytes on both targets.
    /// Regions the layout does not have are left alone.</param>
    public ModelTarget(Variant variant, IReadOnlyDictionary<string, byte[]>? regionImages)
    {
        Variant = variant;
        RegionImages = regionImages ?? new Dictionary<string, byte[]>();
    }

    public IReadOnlyDictionary<string, byte[]> RegionImages { get; }

    public static readonly ModelTarget Reference = new(Variant.Reference);

    public Variant Variant { get; }

    public string Name => Variant.ToString();

    public const Capabilities All =
        Capabilities.DmaMapping | Capabilities.MapClients | Capabilities.MemoryInternals | Capabilities.VirtqueueCalls
        | Capabilities.VirtioBlk | Capabilities.FlatViews | Capabilities.MemoryContents | Capabilities.InProcessInstances
        | Capabilities.GuestMemory | Capabilities.RingWriteOrder | Capabilities.AnyLayout;

    public Capabilities Capabilities => All;

    public string CommandLine => Variant.IsReference ? "" : $"--variant {Variant.OptionValue}";

    public bool IsReference => Variant.IsReference;

    /// <summary>None: the model runs any layout.</summary>
    public TargetMachine? Machine => null;

    public ITargetSession Open(Profile profile, LayoutSpec layout) =>
        new Session(Name, profile, layout, NewSystem(layout, profile), Variant.VirtioFault);

    public MemorySystem NewSystem(LayoutSpec layout, Profile profile)
    {
        var system = new MemorySystem(layout, profile, Variant.Fault);
        foreach (var (name, image) in RegionImages)
            if (system.Regions.FirstOrDefault(r => r.Name == name) is { RamBlock: { } block }) block.Bytes.Write(0, image);
        return system;
    }

    public VirtioDevice NewVirtioDevice(MemorySystem memory, AddressSpace dmaAs, int queues, ulong features) =>
        new(memory, dmaAs, queues, features, Variant.VirtioFault);

    /// <summary>A whole scenario in one go (the common case; no session bookkeeping).</summary>
    internal Observation RunWhole(Scenario scenario) =>
        (RegionImages.Count == 0
            ? ScenarioRunner.Run(scenario, Variant.Fault, Variant.VirtioFault)
            : ScenarioRunner.Run(scenario, NewSystem(scenario.Layout, scenario.Profile), Variant.VirtioFault)).Observe(Name);

    /// <summary><see cref="TargetRuns.RunAndRelease"/> without a session, which observes the whole run once
    /// to learn what is still live and again at the end: the same operations, the same observation.</summary>
    internal Observation RunAndReleaseWhole(Scenario scenario)
    {
        var stepper = new ScenarioRunner.ScenarioStepper(NewSystem(scenario.Layout, scenario.Profile), Variant.VirtioFault);
        var ops = new List<ScenarioOp>(scenario.Ops.Count + 4);
        void Apply(ScenarioOp op)
        {
            ops.Add(op);
            stepper.Apply(op);
        }
        foreach (var op in scenario.Ops) Apply(op);
        foreach (var id in stepper.LiveIds()) Apply(new UnmapOp(id, null));
        Apply(new RunBottomHalvesOp());
        return ModelObservation.Of(Name, new Scenario(scenario.Profile, scenario.Layout, ops.ToArray()), stepper.System, stepper.Steps,
            stepper.Mappings, stepper.Records, stepper.Virtio);
    }

    public override string ToString() => Name;

    private sealed class Session : ITargetSession
    {
        private readonly string target;
        private readonly Profile profile;
        private readonly LayoutSpec layout;
        private readonly ScenarioRunner.ScenarioStepper stepper;
        private readonly List<ScenarioOp> ops = new();

        internal Session(string target, Profile profile, LayoutSpec layout, MemorySystem system, VirtioFault virtioFault)
        {
            this.target = target;
            this.profile = profile;
            this.layout = layout;
            stepper = new ScenarioRunner.ScenarioStepper(system, virtioFault);
        }

        public StepRecord Apply(ScenarioOp op)
        {
            ops.Add(op);
            return stepper.Apply(op);
        }

        public Observation Observe() =>
            ModelObservation.Of(target, new Scenario(profile, layout, ops.ToArray()), stepper.System, stepper.Steps.ToArray(),
                stepper.Mappings, new Dictionary<string, MappingRecord>(stepper.Records), stepper.Virtio);

        public IReadOnlyDictionary<string, IReadOnlyList<FlatRangeRecord>> FlatViews() =>
            stepper.System.AddressSpaces.ToDictionary(a => a.Name, a => (IReadOnlyList<FlatRangeRecord>)a.View.Ranges
                .Select(r => new FlatRangeRecord(r.Start, r.Size, r.Region.Name, r.OffsetInRegion, r.Readonly)).ToList());

        public MemoryContents Contents()
        {
            var sys = stepper.System;
            var pages = new List<(string, IReadOnlyList<(ulong, string)>)>();
            foreach (var r in sys.Regions)
            {
                var store = r.RamBlock?.Bytes ?? r.Device?.Storage;
                if (store is null) continue;
                pages.Add((r.Name, store.ModifiedPages().Select(kv => (kv.Key, Convert.ToHexString(kv.Value))).ToList()));
            }
            var dirty = Enum.GetValues<DirtyClient>().ToDictionary(c => c, c => (IReadOnlyList<ulong>)sys.Dirty.Pages(c).Order().ToList());
            return new MemoryContents(pages, dirty);
        }

        public void Dispose() { }
    }
}
