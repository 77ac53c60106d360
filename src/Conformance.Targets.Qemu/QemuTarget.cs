using System.Net.Sockets;
using Conformance.Model;
using Conformance.Model.Scenarios;
using Conformance.Model.Targets;
using Conformance.Model.Virtio;
using Conformance.Qemu;

namespace Conformance.Targets.Qemu;

/// <summary>
/// A QEMU binary as a target: virtio-blk-pci driven as a guest drives it over qtest, one reused process
/// (reset between scenarios, replaced when it dies or hangs). It runs the virtio-blk vocabulary of the
/// scenario language on its own machine's layout (<see cref="Machine"/>): a virtio setup matching what its
/// driver negotiates, guest writes and reads, descriptors (in the ring or in indirect tables), publish,
/// avail index and interrupt suppression writes, kicks and completion. It cannot be asked to map, pop or
/// register map clients, and it cannot show references, bounce bytes or dirty pages: properties that need
/// those are skipped on it. A scenario outside what it can run fails with <see cref="TargetCannotRun"/>.
/// </summary>
public sealed class QemuTarget : ITarget, IKeepsStateAcrossScenarios, IDisposable
{
    /// <summary>The disk the device gets: 2048 sectors (1 MiB) of the model's initial pattern.</summary>
    public const int DiskSectors = 2048;

    private readonly VirtioBlkSession _session;
    private QemuMachine? _machine;

    public QemuTarget(QemuBinary binary, VirtioTransport transport, ulong? maxBounceBufferSize = null, TimeSpan? timeout = null,
        IReadOnlyList<string>? deviations = null)
    {
        Binary = binary;
        Transport = transport;
        Deviations = deviations ?? Array.Empty<string>();
        _session = new VirtioBlkSession(binary, VirtioContext.InitialDisk(DiskSectors), timeout, transport, maxBounceBufferSize);
    }

    public QemuBinary Binary { get; }

    /// <summary>The registered findings this QEMU's release shows (known deviations: F-BLK-2, F-QEMU-2, F-QEMU-3),
    /// as the caller found them in the registry for <see cref="Binary"/>'s version.</summary>
    public IReadOnlyList<string> Deviations { get; }
    public VirtioTransport Transport { get; }

    /// <summary>The reused process (for its counters: processes started, kicks not waited for).</summary>
    public VirtioBlkSession BlkSession => _session;

    public string Name => $"QEMU {Binary.Version} ({Transport.ToString().ToLowerInvariant()} transport{(_session.MaxBounceBufferSize is { } b ? $", bounce budget {b}" : "")})";

    public Capabilities Capabilities => Capabilities.VirtioBlk | Capabilities.GuestMemory;

    public string CommandLine =>
        $"--target qemu --qemu {Binary.Path} --transport {Transport.ToString().ToLowerInvariant()}{(_session.MaxBounceBufferSize is { } b ? $" --bounce-budget {b}" : "")}";

    public bool IsReference => false;

    /// <summary>This QEMU's machine as the model sees it (starts the process the first time).</summary>
    public QemuMachine QemuMachine => _machine ??= QemuMachine.Of(Binary, _session);

    /// <summary>The machine for generators: the device as its driver sets it up (no EVENT_IDX, no indirect
    /// descriptors, VERSION_1 on the modern transport, so that the model shows DEVICE_NEEDS_RESET where this
    /// QEMU does), its disk, RAM above the rings for a scenario's own buffers, and pc-testdev's 64 KiB of MMIO
    /// storage. (A scenario's own VERSION_1 flag is not checked: it only changes the model's status byte.)</summary>
    public TargetMachine Machine
    {
        get
        {
            var m = QemuMachine;
            return new TargetMachine(m.Layout, m.Space, m.QueueSize, m.Rings.Desc, m.Rings.Avail, m.Rings.Used, DiskSectors, "",
                EventIdx: false, Indirect: false, Version1: Transport == VirtioTransport.Modern, FreeRam: (0x200000UL, 0x3000000UL), MmioStorage: VirtioBlkSession.ClearableWindows[1])
            {
                Deviations = Deviations,
                LayoutFrom = m.LayoutFrom,
            };
        }
    }

    /// <summary>The profile of the model this QEMU's version follows.</summary>
    public Profile Profile => Binary.Profile;

    /// <summary>A fresh start for the next scenario: the current process ends (state QEMU keeps across a
    /// device reset, such as a leaked bounce budget, goes with it).</summary>
    public void Restart() => _session.Restart();

    /// <summary>A session on this QEMU. The layout is the scenario's own; the operations run on the real
    /// machine, so a scenario written on another layout than <see cref="Machine"/>'s means something else here.</summary>
    public ITargetSession Open(Profile profile, LayoutSpec layout)
    {
        if (_freshProcessNext)
        {
            Restart();
            RestartsForKeptBounceBytes++;
            _freshProcessNext = false;
        }
        return new Session(this, profile, layout, ++_sessions);
    }

    /// <summary>Sessions opened so far: one process runs one scenario at a time, so opening a session ends the
    /// one before (its further operations are refused).</summary>
    private int _sessions;

    /// <summary>Known deviation F-QEMU-2 (docs/findings.md): this release keeps the bounce bytes a failed pop
    /// had been granted counted against the device's budget for the life of the process, which a device reset
    /// does not undo. After a scenario whose device broke on a budgeted process, the next scenario gets a fresh
    /// process (started in the background) unless a reference that broke alike saw no pop give bounce bytes
    /// back (a disagreement always ends the process: shrinking must not inherit its state).</summary>
    private bool _freshProcessNext;

    private bool KeepsBounceBytes => _session.MaxBounceBufferSize is not null && Deviations.Contains("F-QEMU-2");

    private void NoteEnd(bool broken)
    {
        if (broken && KeepsBounceBytes) _freshProcessNext = true;
    }

    /// <summary>Processes ended because a failed pop may have kept bounce bytes (F-QEMU-2).</summary>
    public int RestartsForKeptBounceBytes { get; private set; }

    public void AfterReference(Observation reference)
    {
        if (_freshProcessNext && reference.Virtio is { Broken: true, BounceBytesUndone: 0 }) _freshProcessNext = false;
    }

    public void Dispose() => _session.Dispose();

    public override string ToString() => Name;

    private sealed class Session : ITargetSession
    {
        private readonly QemuTarget _target;
        private readonly Profile _profile;
        private readonly LayoutSpec _layout;
        private readonly List<ScenarioOp> _ops = new();
        private readonly List<StepRecord> _steps = new();
        private VirtioBlkDriver? _blk;
        private bool _ringReadable = true;
        /// <summary>Whether every kick so far was waited for until its requests were used (else the end asks
        /// QEMU whether the device broke).</summary>
        private bool _completed = true;
        private bool _begun;
        private readonly int _generation;
        private string? _failure;
        private string _failureErrors = "";
        private int _errorsSeen;
        private BlkObservation? _end;
        /// <summary>After a kick not yet waited for: how many heads were published and the used index then.</summary>
        private (ushort Published, ushort UsedIdx)? _kickNotWaited;

        internal Session(QemuTarget target, Profile profile, LayoutSpec layout, int generation)
        {
            _generation = generation;
            _target = target;
            _profile = profile;
            _layout = layout;
        }

        private VirtioBlkSession Blk => _target._session;

        public StepRecord Apply(ScenarioOp op)
        {
            if (_generation != _target._sessions) throw new TargetCannotRun("a later session of this QEMU has taken its process over");
            _end = null;
            string? skipped = null;
            byte[]? bytesRead = null;
            IReadOnlyList<(uint, uint)> newUsed = Array.Empty<(uint, uint)>();
            bool virtioOp = false;
            if (_failure is not null) skipped = $"QEMU failed earlier: {_failure}";
            else
            {
                try
                {
                    switch (op)
                    {
                        case VirtioSetupOp v:
                            virtioOp = true;
                            SetUp(v);
                            break;
                        case WriteOp w:
                            Memory(w.Space);
                            BeginCase();
                            Blk.WriteGuest(w.Addr, w.Data);
                            break;
                        case ReadOp r:
                            Memory(r.Space);
                            if (r.Len > 1 << 20) throw new TargetCannotRun("reads above 1 MiB are not asked of QEMU");
                            BeginCase();
                            bytesRead = Blk.ReadGuest(r.Addr, (int)r.Len);
                            break;
                        case DescriptorsOp d:
                            virtioOp = true;
                            var ring = Ring();
                            foreach (var e in d.Entries)
                            {
                                if (d.Table is null && (e.Index < 0 || e.Index >= ring.Num)) { skipped = $"descriptor index {e.Index} is outside the ring"; break; }
                                Blk.WriteDescriptor(d.Table ?? ring.DescAddr, e.Index, new VringDesc(e.Addr, e.Len, e.Flags, e.Next));
                            }
                            break;
                        case PublishOp p:
                            virtioOp = true;
                            foreach (var head in p.Heads) NoteDeviceWritable(head);
                            // the previous kick's requests may still be in flight: measured, not assumed
                            if (_kickNotWaited is { } k && _ringReadable) Blk.NoteKickNotWaitedFor(k.UsedIdx < k.Published);
                            _kickNotWaited = null;
                            Ring().Publish(p.Heads);
                            break;
                        case AvailIdxOp a:
                            virtioOp = true;
                            Ring().SetAvailIdx(a.Idx);
                            break;
                        case InterruptSuppressionOp s:
                            virtioOp = true;
                            Ring().SetAvailFlags(s.Flags);
                            Ring().SetUsedEvent(s.UsedEvent);
                            break;
                        case KickOp:
                            virtioOp = true;
                            DriverOf().Kick();
                            _completed = false;   // until a completion wait says otherwise
                            _kickNotWaited = (Ring().AvailIdx, Ring().UsedIdx());
                            newUsed = Collect();
                            break;
                        case CompleteIoOp:
                            virtioOp = true;
                            _kickNotWaited = null;
                            _completed = Blk.WaitForCompletion(Ring().AvailIdx, _ringReadable);
                            // requests popped before a virtio_error still complete (and unmap) in the block layer
                            if (!_completed) Blk.DrainInFlight();
                            newUsed = Collect();
                            // QEMU's own queue indices cost a QMP round trip: read once, at the end
                            break;
                        default:
                            throw new TargetCannotRun($"{ScenarioTrace.Describe(op)}: QEMU cannot be asked to do this (it runs virtio-blk as a guest drives it)");
                    }
                }
                catch (Exception e) when (e is QemuException or IOException or SocketException or InvalidOperationException)
                {
                    var failed = Blk.Failed(e, Array.Empty<GuestRange>());
                    _failure = failed.QemuFailure;
                    _failureErrors = failed.Errors;
                    _blk = null;
                    skipped = $"QEMU failed: {_failure}";
                }
            }
            VirtioStep? virtio = null;
            if (virtioOp && _blk is not null)
            {
                string errors = Blk.ErrorsSoFar;
                string? newErrors = errors.Length > _errorsSeen ? errors[_errorsSeen..].Trim() : null;
                _errorsSeen = errors.Length;
                virtio = new VirtioStep(null, null, string.IsNullOrEmpty(newErrors) ? null : newErrors, newUsed, false,
                    0, 0, 0, 0, 0, 0);   // QEMU's queue indices cost a QMP round trip: read once, at the end
            }
            _ops.Add(op);
            var step = new StepRecord(_steps.Count, op, skipped, null, null, bytesRead, Array.Empty<string>(), Array.Empty<string>(),
                Array.Empty<DeviceAccess>(), Array.Empty<DirtyPage>(), new Dictionary<string, int>(), new Dictionary<string, ulong>(), 0,
                Array.Empty<string>())
            { Virtio = virtio };
            _steps.Add(step);
            return step;
        }

        private static void Memory(string space)
        {
            if (space != "memory") throw new TargetCannotRun($"QEMU's guest writes and reads go to \"memory\", not \"{space}\"");
        }

        /// <summary>
        /// Marks what the device may write for a published head, so the process is clean for the next scenario:
        /// the device-writable buffers of its chain as the guest memory holds it now, through indirect tables
        /// too (written as descriptors or as plain guest writes). Bounded walks: a malformed chain is QEMU's to
        /// reject, not this bookkeeping's to follow.
        /// </summary>
        private void NoteDeviceWritable(ushort head)
        {
            var ring = Ring();
            int index = head % ring.Num;
            for (int step = 0; step <= ring.Num; step++)
            {
                ulong at = ring.DescAddr + (ulong)index * VirtioConstants.DescSize;
                // tables are read only where reading has no side effect: RAM, pc-testdev's storage, the BIOS ROM
                if (!Inert(at, VirtioConstants.DescSize)) break;
                var d = VringDesc.Decode(Blk.ReadGuest(at, VirtioConstants.DescSize));
                if (d.IsIndirect)
                {
                    int entries = (int)Math.Min(d.Len / VirtioConstants.DescSize, 1024u);
                    var table = entries == 0 || !Inert(d.Addr, entries * VirtioConstants.DescSize)
                        ? Array.Empty<byte>()
                        : Blk.ReadGuest(d.Addr, entries * VirtioConstants.DescSize);
                    entries = table.Length / VirtioConstants.DescSize;
                    for (int k = 0; k < entries; k++)
                    {
                        var e = VringDesc.Decode(table.AsSpan(k * VirtioConstants.DescSize, VirtioConstants.DescSize));
                        if (e.IsWrite) MayWrite(e);
                    }
                }
                else if (d.IsWrite) MayWrite(d);
                if (!d.HasNext || d.Next >= ring.Num) break;
                index = d.Next;
            }
        }

        private void MayWrite(VringDesc d) => Blk.MayWrite(d.Addr, d.Len);

        /// <summary>Whether [addr, addr + length) lies in memory whose reads have no side effect.</summary>
        private static bool Inert(ulong addr, int length)
        {
            ulong last = addr + (ulong)length - 1;
            return last >= addr && (VirtioBlkSession.ClearableWindows.Any(w => addr >= w.Start && last < w.End) || (addr >= BiosStart && last <= 0xffffffffUL));
        }

        /// <summary>pc.bios, the top 256 KiB below 4 GiB.</summary>
        private const ulong BiosStart = 0xfffc0000UL;

        /// <summary>The session's fresh start on the process (the previous scenario undone), made by its first
        /// operation that reaches the machine.</summary>
        private void BeginCase()
        {
            if (_begun) return;
            var machine = _target.QemuMachine;
            // any scenario may write the disk: its image is part of every observation (P26 compares it)
            Blk.Begin(null, mayWriteDisk: true);
            _begun = true;
            _ringReadable = GuestReadable(machine.Rings.Used);
        }

        private VirtioBlkDriver DriverOf() => _blk ?? throw new TargetCannotRun("no virtio setup before this operation");

        private SplitRingDriver Ring() => DriverOf().Ring;

        private IReadOnlyList<(uint, uint)> Collect() => _ringReadable ? Ring().CollectUsed() : Array.Empty<(uint, uint)>();

        /// <summary>A virtio setup QEMU's driver can do: no EVENT_IDX or indirect descriptors negotiated (the
        /// driver accepts none), its disk, no serial, the queue size the device reports, the device in the
        /// address space the process was started for.</summary>
        private void SetUp(VirtioSetupOp v)
        {
            if (_blk is not null) throw new TargetCannotRun("a virtio device is already set up");
            var machine = _target.QemuMachine;
            if (v.EventIdx || v.Indirect) throw new TargetCannotRun("QEMU's driver negotiates neither EVENT_IDX nor indirect descriptors");
            if (v.DiskSectors != DiskSectors) throw new TargetCannotRun($"the device's disk has {DiskSectors} sectors, not {v.DiskSectors}");
            if (v.Serial.Length != 0) throw new TargetCannotRun("the device has no serial");
            if (v.Space != machine.Space) throw new TargetCannotRun($"this QEMU's device DMAs through \"{machine.Space}\", not \"{v.Space}\"");
            if (v.QueueSize != machine.QueueSize) throw new TargetCannotRun($"this QEMU's device reports a queue of {machine.QueueSize}, not {v.QueueSize}");
            var rings = new RingAddresses(v.Desc, v.Avail, v.Used);
            _ringReadable = GuestReadable(v.Used);
            var wanted = rings == machine.Rings ? (RingAddresses?)null : rings;
            // guest writes made before the setup stay: the device is brought up again where the rings are wanted
            _blk = _begun ? Blk.Reconfigure(wanted) : Blk.Begin(wanted, mayWriteDisk: true);
            _begun = true;
            _errorsSeen = Blk.ErrorsSoFar.Length;
        }

        /// <summary>Whether the guest can read back what the device writes at an address: RAM (64 MiB) or
        /// pc-testdev's MMIO; elsewhere (ROM, unassigned) completion is read from QEMU's own used index.</summary>
        private static bool GuestReadable(ulong addr) => VirtioBlkSession.ClearableWindows.Any(w => addr >= w.Start && addr < w.End);

        public Observation Observe()
        {
            if (_generation != _target._sessions) throw new TargetCannotRun("a later session of this QEMU has taken its process over");
            BlkObservation? end = null;
            if (_failure is null && _blk is not null)
            {
                try
                {
                    if (_end is null)
                    {
                        _end = Blk.End(_completed, Array.Empty<GuestRange>());
                        _target.NoteEnd(_end.Broken);
                    }
                    end = _end;
                }
                catch (Exception e) when (e is QemuException or IOException or SocketException or InvalidOperationException)
                {
                    var failed = Blk.Failed(e, Array.Empty<GuestRange>());
                    _failure = failed.QemuFailure;
                    _failureErrors = failed.Errors;
                    _blk = null;
                }
            }
            var memory = new MemoryEnd(new Dictionary<string, int>(), Array.Empty<MappingRecord>(), Array.Empty<string>(), new Dictionary<string, ulong>(),
                new Dictionary<DirtyClient, IReadOnlyList<(string, ulong)>>(), 0, Array.Empty<string>());
            VirtioEnd? virtio = null;
            if (_failure is not null)
                virtio = new VirtioEnd(0, false, _target.Transport == VirtioTransport.Modern, new[] { $"QEMU FAILED ({_failure}); stderr: {_failureErrors}" },
                    0, 0, 0, 0, 0, Array.Empty<RingWrite>(), Array.Empty<(uint, uint)>(), Array.Empty<byte>(), 0);
            else if (end is not null)
                virtio = new VirtioEnd(end.DeviceStatus, end.Broken, _target.Transport == VirtioTransport.Modern,
                    ErrorLines(end.Errors),
                    0, end.Queue.LastAvailIdx, end.Queue.UsedIdx, end.Queue.InUse, 0, Array.Empty<RingWrite>(), end.Used, end.Disk ?? Array.Empty<byte>(), 0);
            return new Observation(_target.Name, new Scenario(_profile, _layout, _ops.ToArray()), _steps.ToArray(), new Dictionary<string, MappingRecord>(), memory, virtio)
            {
                Failure = _failure is null ? null : $"QEMU failed ({_failure}); stderr: {_failureErrors}",
            };
        }

        /// <summary>QEMU's error lines as the model words them: without the program name QEMU puts in front
        /// (error_report: "qemu-system-x86_64: virtio: ...").</summary>
        private string[] ErrorLines(string stderr)
        {
            string prefix = Path.GetFileName(_target.Binary.Path) + ": ";
            return stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(l => l.StartsWith(prefix, StringComparison.Ordinal) ? l[prefix.Length..] : l)
                .ToArray();
        }

        public IReadOnlyDictionary<string, IReadOnlyList<FlatRangeRecord>> FlatViews() =>
            throw new TargetCannotRun("the QEMU target does not report flat views");

        public MemoryContents Contents() => throw new TargetCannotRun("QEMU cannot show every region's contents");

        public void Dispose() { }
    }
}
