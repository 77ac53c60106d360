namespace Conformance.Model.Scenarios;

/// <summary>
/// Runs a scenario on a fresh model instance, recording each step's outcome and effects. Operations that
/// name a mapping which is not live (never obtained, failed, already unmapped), or that would be caller
/// misuse QEMU does not check (access_len beyond the mapping, writes outside it), are recorded as skipped
/// with the reason instead of being executed: QEMU's reaction to them is undefined behaviour, not a rule.
/// </summary>
public static class ScenarioRunner
{
    public static ScenarioRun Run(Scenario scenario, Fault faults = Fault.None) => Run(scenario, faults, Virtio.VirtioFault.None);

    public static ScenarioRun Run(Scenario scenario, Fault faults, Virtio.VirtioFault virtioFaults)
    {
        var system = new MemorySystem(scenario.Layout, scenario.Profile, faults);
        return Run(scenario, system, virtioFaults);
    }

    public static ScenarioRun Run(Scenario scenario, MemorySystem system) => Run(scenario, system, Virtio.VirtioFault.None);

    public static ScenarioRun Run(Scenario scenario, MemorySystem system, Virtio.VirtioFault virtioFaults)
    {
        if (scenario.IsConcurrent)
            throw new ArgumentException("a scenario with threads is a concurrency case: the concurrency properties (P20-P24) run it", nameof(scenario));
        var stepper = new ScenarioStepper(system, virtioFaults);
        foreach (var op in scenario.Ops) stepper.Apply(op);
        return new ScenarioRun(scenario, system, stepper.Steps, stepper.Mappings) { Virtio = stepper.Virtio, Records = stepper.Records };
    }

    /// <summary>Runs operations one at a time on one model instance, recording each step.</summary>
    internal sealed class ScenarioStepper
    {
        private readonly MemorySystem system;
        private readonly Virtio.VirtioFault virtioFaults;
        private int journalSeen;
        private int dirtySeen;

        internal ScenarioStepper(MemorySystem system, Virtio.VirtioFault virtioFaults)
        {
            this.system = system;
            this.virtioFaults = virtioFaults;
            journalSeen = system.AccessJournal.Count;
            dirtySeen = system.Dirty.NewlyDirtyJournal.Count;
        }

        internal MemorySystem System => system;
        internal List<StepRecord> Steps { get; } = new();
        internal Dictionary<string, Mapping> Mappings { get; } = new();
        internal Dictionary<string, Targets.MappingRecord> Records { get; } = new();
        internal VirtioContext? Virtio { get; private set; }

        internal StepRecord Apply(ScenarioOp op)
        {
            var mappings = Mappings;
            var virtio = Virtio;
            int i = Steps.Count;
            string? skipped = null;
            Targets.MapOutcome? map = null;
            UnmapResult? unmap = null;
            byte[]? bytes = null;
            IReadOnlyList<string> scheduled = Array.Empty<string>();
            IReadOnlyList<string> ran = Array.Empty<string>();
            Virtio.PopResult? popped = null;
            int errorsBefore = virtio?.Device.Errors.Count ?? 0;

            Mapping? Live(string id)
            {
                if (mappings.TryGetValue(id, out var m) && m.Live) return m;
                skipped = $"{id} is not a live mapping";
                return null;
            }

            AddressSpace? SpaceOf(string name)
            {
                foreach (var a in system.AddressSpaces)
                    if (a.Name == name) return a;
                skipped = $"no address space '{name}'";
                return null;
            }

            switch (op)
            {
                case MapOp m:
                    if (mappings.TryGetValue(m.Id, out var prior) && prior.Live) skipped = $"{m.Id} is still live";
                    else if (SpaceOf(m.Space) is { } space)
                    {
                        var r = system.Map(space, m.Addr, m.Len, m.Write);
                        Targets.MappingRecord? record = null;
                        if (r.Mapping is not null)
                        {
                            mappings[m.Id] = r.Mapping;
                            record = Targets.MappingRecord.Of(m.Id, r.Mapping);
                            Records[m.Id] = record;
                        }
                        map = new Targets.MapOutcome(record, r.Length, r.Failure);
                    }
                    break;
                case WriteMappedOp w when Live(w.Id) is { } mapping:
                    if (w.Offset > mapping.Length) skipped = $"offset {w.Offset} is beyond mapping {w.Id} ({mapping.Length} bytes)";
                    else
                    {
                        var data = w.Data ?? Enumerable.Repeat(w.FillByte ?? 0, (int)(mapping.Length - w.Offset)).ToArray();
                        if ((ulong)data.Length > mapping.Length - w.Offset) skipped = $"{data.Length} bytes at +{w.Offset} overrun mapping {w.Id} ({mapping.Length} bytes)";
                        else system.WriteMapped(mapping, w.Offset, data);
                    }
                    break;
                case ReadMappedOp rm when Live(rm.Id) is { } mapping:
                    {
                        ulong len = rm.Len ?? (rm.Offset <= mapping.Length ? mapping.Length - rm.Offset : 0);
                        if (rm.Offset > mapping.Length || len > mapping.Length - rm.Offset) skipped = $"[+{rm.Offset}, {len} bytes) is outside mapping {rm.Id} ({mapping.Length} bytes)";
                        else
                        {
                            bytes = new byte[len];
                            system.ReadMapped(mapping, rm.Offset, bytes);
                        }
                    }
                    break;
                case UnmapOp u when Live(u.Id) is { } mapping:
                    {
                        ulong access = u.AccessPercent is { } percent ? mapping.Length * (ulong)percent / 100 : u.AccessLen ?? mapping.Length;
                        if (access > mapping.Length) skipped = $"access_len {access} exceeds the {mapping.Length} mapped bytes of {u.Id} (caller misuse)";
                        else
                        {
                            var r = system.Unmap(mapping, access);
                            unmap = r;
                            scheduled = r.ClientsScheduled;
                        }
                    }
                    break;
                case ReadOp r when SpaceOf(r.Space) is { } space:
                    if (r.Len > 1 << 20) skipped = "reads above 1 MiB are not modelled";
                    else
                    {
                        bytes = new byte[r.Len];
                        system.Read(space, r.Addr, bytes);
                    }
                    break;
                case WriteOp w when SpaceOf(w.Space) is { } space:
                    system.Write(space, w.Addr, w.Data);
                    break;
                case RegisterClientOp c when SpaceOf(c.Space) is { } space:
                    scheduled = system.RegisterMapClient(space, c.Client);
                    break;
                case UnregisterClientOp c when SpaceOf(c.Space) is { } space:
                    system.UnregisterMapClient(space, c.Client);
                    break;
                case RunBottomHalvesOp:
                    ran = system.RunBottomHalves();
                    break;
                case VirtioSetupOp v when SpaceOf(v.Space) is { } space:
                    if (virtio is null) Virtio = virtio = SetUpVirtio(system, space, v, virtioFaults);
                    else skipped = SetUpAgain(virtio, space, v);
                    break;
                case MapOrWaitOp or ServeQueueOp:
                    skipped = "runs only on a thread of a concurrency case";
                    break;
                default:
                    if (IsVirtioOp(op))
                    {
                        if (virtio is null) skipped = "no virtio device is set up";
                        else skipped = RunVirtioOp(virtio, op, out popped);
                    }
                    break;
            }

            var accesses = system.AccessesSince(journalSeen);
            journalSeen = system.AccessJournal.Count;
            var newlyDirty = system.Dirty.NewlyDirtyJournal.Count == dirtySeen ? (IReadOnlyList<DirtyPage>)Array.Empty<DirtyPage>() : system.Dirty.NewlyDirtyJournal.Skip(dirtySeen)
                .OrderBy(d => d.Client).ThenBy(d => d.Page)
                .Select(d =>
                {
                    var (block, index) = system.LocatePage(d.Page);
                    return new DirtyPage(d.Client, block.Name, index);
                })
                .ToList();
            dirtySeen = system.Dirty.NewlyDirtyJournal.Count;
            // the scenario's own mappings change only by its maps and unmaps
            if (op is MapOp mo && map is { Succeeded: true }) _liveIds = WithId(LiveIds(), mo.Id, add: true);
            else if (op is UnmapOp uo && unmap is { Performed: true }) _liveIds = WithId(LiveIds(), uo.Id, add: false);
            var liveIds = LiveIds();
            VirtioStep? virtioStep = null;
            if (virtio is not null && (IsVirtioOp(op) || op is VirtioSetupOp))
            {
                var vq = virtio.Device.Queues[0];
                var newUsed = vq.Ready ? virtio.Driver.CollectUsed() : new List<(uint, uint)>();
                string? poppedName = op is PopOp po && popped is { Element: not null } ? po.Element : null;
                var newErrors = virtio.Device.Errors.Skip(op is VirtioSetupOp ? 0 : errorsBefore).ToList();
                virtioStep = new VirtioStep(poppedName, popped?.Element?.Head, newErrors.Count > 0 ? string.Join("; ", newErrors) : null, newUsed, virtio.Device.Broken,
                    vq.InUse, vq.LastAvailIdx, vq.UsedIdx, virtio.Device.Interrupts, virtio.Blk.InFlight, virtio.Device.DescriptorReads)
                { Element = popped?.Element is { } el ? ElementRecordOf(el) : null };
            }
            var step = new StepRecord(i, op, skipped, map, unmap, bytes, scheduled, ran, accesses, newlyDirty, RefCounts(), BounceBytes(),
                LiveBounceMappings(), liveIds)
            { Virtio = virtioStep };
            Steps.Add(step);
            return step;
        }

        // A step's snapshots of references and bounce bytes are shared with the step before when nothing in
        // them changed (most steps change neither; the records are read-only).
        private List<string>? _liveIds;
        private Dictionary<string, int>? _refCounts;
        private Dictionary<string, ulong>? _bounceBytes;

        private IReadOnlyDictionary<string, int> RefCounts()
        {
            var owners = system.Owners;
            if (_refCounts is { } last && last.Count == owners.Count)
            {
                // Stryker disable once Boolean : equivalent, a snapshot rebuilt every step is equal to the one it would share (sharing only saves a dictionary)
                bool same = true;
                foreach (var o in owners) same &= last.TryGetValue(o.Name, out var c) && c == o.RefCount;
                if (same) return last;
            }
            var counts = new Dictionary<string, int>(owners.Count);
            foreach (var o in owners) counts.Add(o.Name, o.RefCount);
            return _refCounts = counts;
        }

        private IReadOnlyDictionary<string, ulong> BounceBytes()
        {
            var spaces = system.AddressSpaces;
            if (_bounceBytes is { } last && last.Count == spaces.Count)
            {
                // Stryker disable once Boolean : equivalent, a snapshot rebuilt every step is equal to the one it would share (sharing only saves a dictionary)
                bool same = true;
                foreach (var a in spaces) same &= last.TryGetValue(a.Name, out var b) && b == system.BounceBytesInUse(a);
                if (same) return last;
            }
            var bytes = new Dictionary<string, ulong>(spaces.Count);
            foreach (var a in spaces) bytes.Add(a.Name, system.BounceBytesInUse(a));
            return _bounceBytes = bytes;
        }

        /// <summary>The scenario's own live mappings, by id in ordinal order.</summary>
        // Stryker disable once all : equivalent, recomputing gives the list the maps and unmaps keep (ModelFastPathTests checks it after every step), and the one computation from scratch (the first call: in the first step, or before any) sees at most one mapping, so its order cannot matter
        internal List<string> LiveIds() =>
            _liveIds ??= Mappings.Where(kv => kv.Value.Live).Select(kv => kv.Key).Order(StringComparer.Ordinal).ToList();

        /// <summary>A copy of the sorted ids <paramref name="ids"/> with <paramref name="id"/> added or removed:
        /// the one change a successful map or an executed unmap makes (earlier steps keep their lists).</summary>
        private static List<string> WithId(List<string> ids, string id, bool add)
        {
            var copy = new List<string>(ids.Count + 1);
            copy.AddRange(ids);
            int at = copy.BinarySearch(id, StringComparer.Ordinal);
            if (add && at < 0) copy.Insert(~at, id);
            else if (!add && at >= 0) copy.RemoveAt(at);
            return copy;
        }

        private int LiveBounceMappings()
        {
            int n = 0;
            foreach (var m in system.LiveMappings)
                if (m.Kind == MappingKind.Bounce) n++;
            return n;
        }

        private static Targets.ElementRecord ElementRecordOf(Virtio.VirtQueueElement e) =>
            new(e.Head,
                e.Out.Select(sg => new Targets.SegmentRecord(sg.Addr, sg.Length, Targets.MappingRecord.Of($"#{sg.Mapping.Id}", sg.Mapping))).ToList(),
                e.In.Select(sg => new Targets.SegmentRecord(sg.Addr, sg.Length, Targets.MappingRecord.Of($"#{sg.Mapping.Id}", sg.Mapping))).ToList());
    }

    private static bool IsVirtioOp(ScenarioOp op) =>
        op is DescriptorsOp or PublishOp or AvailIdxOp or InterruptSuppressionOp or KickOp or CompleteIoOp or PopOp or ReleaseOp or VirtioResetOp;

    /// <summary>A device that was reset is set up again as a driver does after a reset (docs/qemu-rules.md,
    /// R5): the same device and disk, its queue at the given rings, status back to DRIVER_OK. Returns why not.</summary>
    private static string? SetUpAgain(VirtioContext virtio, AddressSpace space, VirtioSetupOp v)
    {
        var device = virtio.Device;
        if (device.Status != 0) return "a virtio device is already set up (reset it first)";
        if (space != device.DmaAs || v.EventIdx != device.Has(Virtio.VirtioConstants.FeatureEventIdx)
            || v.Indirect != device.Has(Virtio.VirtioConstants.FeatureIndirectDesc) || v.Version1 != device.Has(Virtio.VirtioConstants.FeatureVersion1))
            return "a reset device is set up again in the same address space, with the features it had";
        var driver = new Virtio.SplitRingDriver(device.Memory, space, v.QueueSize, v.Desc, v.Avail, v.Used);
        driver.ClearRings(v.EventIdx);
        device.DriverOk();
        device.SetupQueue(0, v.QueueSize, v.Desc, v.Avail, v.Used);
        virtio.Driver = driver;
        return null;
    }

    private static VirtioContext SetUpVirtio(MemorySystem system, AddressSpace space, VirtioSetupOp v, Virtio.VirtioFault faults)
    {
        ulong features = 0;
        if (v.EventIdx) features |= 1UL << Virtio.VirtioConstants.FeatureEventIdx;
        if (v.Indirect) features |= 1UL << Virtio.VirtioConstants.FeatureIndirectDesc;
        if (v.Version1) features |= 1UL << Virtio.VirtioConstants.FeatureVersion1;
        var device = new Virtio.VirtioDevice(system, space, 1, features, faults);
        var driver = new Virtio.SplitRingDriver(system, space, v.QueueSize, v.Desc, v.Avail, v.Used);
        driver.ClearRings(v.EventIdx);
        device.SetupQueue(0, v.QueueSize, v.Desc, v.Avail, v.Used);
        var blk = new Virtio.VirtioBlk(device, VirtioContext.InitialDisk(v.DiskSectors), v.Serial);
        return new VirtioContext(device, blk, driver);
    }

    /// <summary>Runs one virtio operation; returns a reason when it was skipped.</summary>
    private static string? RunVirtioOp(VirtioContext v, ScenarioOp op, out Virtio.PopResult? popped)
    {
        popped = null;
        var vq = v.Device.Queues[0];
        switch (op)
        {
            case DescriptorsOp d:
                foreach (var e in d.Entries)
                {
                    if (d.Table is null && (e.Index < 0 || e.Index >= v.Driver.Num)) return $"descriptor index {e.Index} is outside the ring";
                    v.Driver.WriteDescriptor(d.Table ?? v.Driver.DescAddr, e.Index, new Virtio.VringDesc(e.Addr, e.Len, e.Flags, e.Next));
                }
                return null;
            case PublishOp p:
                v.Driver.Publish(p.Heads);
                return null;
            case AvailIdxOp a:
                v.Driver.SetAvailIdx(a.Idx);
                return null;
            case InterruptSuppressionOp s:
                v.Driver.SetAvailFlags(s.Flags);
                v.Driver.SetUsedEvent(s.UsedEvent);
                return null;
            case KickOp:
                try
                {
                    v.Blk.Kick();
                }
                catch (NotSupportedException e)
                {
                    return e.Message;
                }
                return null;
            case CompleteIoOp:
                v.Blk.CompleteIo();
                return null;
            case PopOp p:
                if (v.Elements.TryGetValue(p.Element, out var existing) && !existing.Released) return $"{p.Element} is still in use";
                popped = v.Device.Pop(vq);
                if (popped.Value.Element is { } el) v.Elements[p.Element] = el;
                return null;
            case ReleaseOp r:
                if (!v.Elements.TryGetValue(r.Element, out var elem) || elem.Released) return $"{r.Element} is not a popped, unreleased element";
                switch (r.How)
                {
                    case "push": v.Device.Push(vq, elem, r.Len); v.Device.Notify(vq); break;
                    case "detach": v.Device.Detach(vq, elem, r.Len); break;
                    case "unpop": v.Device.Unpop(vq, elem, r.Len); break;
                    default: return $"unknown release '{r.How}'";
                }
                return null;
            case VirtioResetOp:
                v.Blk.Reset();
                return null;
        }
        return null;
    }
}
