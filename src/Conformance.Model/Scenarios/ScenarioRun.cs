using Conformance.Model.Targets;

namespace Conformance.Model.Scenarios;

/// <summary>The result of running a scenario on a model instance, with the instance itself (for tests and
/// explanations of the model; properties judge its <see cref="Observe"/> instead).</summary>
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

    internal IReadOnlyDictionary<string, MappingRecord> Records { get; init; } = new Dictionary<string, MappingRecord>();

    /// <summary>The virtio device, its virtio-blk front and the driver, if the scenario set one up.</summary>
    public VirtioContext? Virtio { get; internal set; }

    /// <summary>The run as plain data, as the target <paramref name="target"/> reports it.</summary>
    public Observation Observe(string target = "reference model") =>
        ModelObservation.Of(target, Scenario, System, Steps, Mappings, Records, Virtio);
}

/// <summary>Reads the plain-data observation off a model instance.</summary>
internal static class ModelObservation
{
    internal static Observation Of(string target, Scenario scenario, MemorySystem sys, IReadOnlyList<StepRecord> steps,
        IReadOnlyDictionary<string, Mapping> mappings, IReadOnlyDictionary<string, MappingRecord> records, VirtioContext? virtio)
    {
        var idOf = new Dictionary<Mapping, string>(ReferenceEqualityComparer.Instance);
        foreach (var (id, m) in mappings) if (m.Live) idOf[m] = id;
        var live = sys.LiveMappings.Select(m => idOf.TryGetValue(m, out var id) ? MappingRecord.Of(id, m) : MappingRecord.Of($"#{m.Id}", m)).ToList();
        var liveIds = idOf.Values.Order(StringComparer.Ordinal).ToList();
        var dirty = new Dictionary<DirtyClient, IReadOnlyList<(string, ulong)>>();
        foreach (var client in Enum.GetValues<DirtyClient>())
        {
            var pages = sys.Dirty.Pages(client);
            dirty[client] = pages.Count == 0
                ? Array.Empty<(string, ulong)>()
                : pages.Order().Select(p => { var (b, i) = sys.LocatePage(p); return (b.Name, i); }).ToList();
        }
        var memory = new MemoryEnd(
            sys.Owners.ToDictionary(o => o.Name, o => o.RefCount),
            live, liveIds,
            sys.AddressSpaces.ToDictionary(a => a.Name, a => sys.BounceBytesInUse(a)),
            dirty,
            sys.UnproducedBytesWrittenBack,
            sys.PendingBottomHalves.ToList());
        VirtioEnd? v = null;
        if (virtio is not null)
        {
            var d = virtio.Device;
            var q = d.Queues[0];
            // the used ring as the guest reads it; reads of a ring in MMIO reach the device, which is no step's doing
            var ring = virtio.Driver;
            int journal = sys.AccessJournal.Count;
            var used = Enumerable.Range(0, Math.Min(ring.UsedIdx(), ring.Num)).Select(ring.UsedElement).ToList();
            sys.TrimAccessJournal(journal);
            v = new VirtioEnd(d.Status, d.Broken, d.Has(Virtio.VirtioConstants.FeatureVersion1), d.Errors.ToList(), d.Interrupts,
                q.LastAvailIdx, q.UsedIdx, q.InUse, virtio.Blk.InFlight, d.RingWrites.ToList(), used, (byte[])virtio.Blk.Disk.Clone(), d.BounceBytesUndone);
        }
        return new Observation(target, scenario, steps, records, memory, v);
    }
}
