using System.Net.Sockets;
using Conformance.Model.Virtio;

namespace Conformance.Qemu;

/// <summary>A range of guest memory to read back after the request.</summary>
public sealed record GuestRange(ulong Addr, int Length);

/// <summary>What QEMU did with a case: used elements, the broken flag, the bytes read back, the error lines
/// printed during the case, the device status byte the driver reads afterwards (DEVICE_NEEDS_RESET 0x40
/// shows only on the modern transport), and, if QEMU died or hung, why (the next case then gets a fresh
/// process).</summary>
/// <paramref name="Disk"/>: the disk image afterwards, for cases that may write it (null otherwise).
public sealed record BlkObservation(IReadOnlyList<(uint Id, uint Len)> Used, bool Broken, IReadOnlyList<byte[]> Bytes, string Errors, byte DeviceStatus, string? QemuFailure,
    (ushort LastAvailIdx, ushort UsedIdx, int InUse) Queue = default, byte[]? Disk = null);

/// <summary>
/// One QEMU process reused across virtio-blk request cases. Between cases the device is reset through
/// the legacy status register (virtio_reset clears <c>broken</c>; virtio_blk_reset drains in-flight
/// requests), the memory the previous case touched is zeroed again and the disk image is rewritten with
/// its initial contents, so every case starts from the state a fresh process has. A QEMU that crashes or
/// stops answering is killed (its stderr tail kept in the observation) and replaced for the next case.
/// </summary>
public sealed class VirtioBlkSession : IDisposable
{
    private readonly QemuBinary _binary;
    private readonly byte[] _disk;
    private readonly TimeSpan _timeout;
    private QemuProcess? _qemu;
    private VirtioBlkDriver? _blk;
    private readonly VirtioTransport _transport;
    private readonly List<GuestRange> _touched = new();
    private bool _diskChanged;
    private readonly System.Diagnostics.Stopwatch _prepare = new(), _wait = new(), _readBack = new();

    /// <summary>Where the time of the cases went so far: resetting and restoring, waiting for the device,
    /// reading the results back (the rest is the guest's writes and kicks, timed by whoever drives them).</summary>
    public (TimeSpan Prepare, TimeSpan Wait, TimeSpan ReadBack) Time => (_prepare.Elapsed, _wait.Elapsed, _readBack.Elapsed);

    public const ulong RingBase = 0x100000;

    public VirtioBlkSession(QemuBinary binary, byte[] disk, TimeSpan? timeout = null, VirtioTransport transport = VirtioTransport.Legacy,
        ulong? maxBounceBufferSize = null)
    {
        _transport = transport;
        MaxBounceBufferSize = maxBounceBufferSize;
        _binary = binary;
        _disk = disk;
        _timeout = timeout ?? TimeSpan.FromSeconds(10);
    }

    public VirtioTransport Transport => _transport;

    /// <summary>The bounce budget the device's bus-master address space was given (null: QEMU's default).</summary>
    public ulong? MaxBounceBufferSize { get; }

    /// <summary>The size of queue 0 as the device reports it (starts the process if needed).</summary>
    public int QueueSize => Ready(null).Item2.QueueSize;

    /// <summary>Where the driver put queue 0's rings: descriptor table, available ring, used ring.</summary>
    public (ulong Desc, ulong Avail, ulong Used) Rings
    {
        get
        {
            var blk = Ready(null).Item2;
            return (blk.Desc, blk.Avail, blk.Used);
        }
    }

    /// <summary>
    /// The machine's memory layout as this QEMU prints it once the driver has set the device up (BARs
    /// placed, bus mastering on): the tree (`info mtree -D`) and the flat views (`info mtree -f`) that
    /// settle which regions terminate. What the model side of a comparison runs on.
    /// </summary>
    public (string Tree, string Flat) LayoutDumps()
    {
        if (_layout is { } known) return known;
        var q = Ready(null).Item1;
        _layout = (q.Qmp.HumanMonitor("info mtree -D"), q.Qmp.HumanMonitor("info mtree -f"));
        return _layout.Value;
    }

    private (string Tree, string Flat)? _layout;

    /// <summary>QEMU processes started so far (1 + restarts after failures).</summary>
    public int ProcessesStarted { get; private set; }

    /// <summary>Kicks after which the next group was published without waiting (cases whose used ring the guest
    /// can read), and how many of them still had requests without a used element at that moment.</summary>
    public int KicksNotWaitedFor { get; private set; }

    /// <inheritdoc cref="KicksNotWaitedFor"/>
    public int KicksWithRequestsInFlight { get; private set; }

    /// <summary>Counts a kick after which the next group went out without waiting (a case driven step by step).</summary>
    public void NoteKickNotWaitedFor(bool requestsInFlight)
    {
        KicksNotWaitedFor++;
        if (requestsInFlight) KicksWithRequestsInFlight++;
    }

    /// <summary>The process of the current case (null between a failure and the next case).</summary>
    public QemuProcess? Process => _qemu;

    // ------------------------------------------------------------------ a case step by step

    private int _errorsFrom;
    private bool _caseOpen;

    /// <summary>Starts a case driven one step at a time: a process with the device reset, the rings where
    /// <paramref name="rings"/> puts them (null: the default layout), and the previous case undone. A step
    /// that throws (<see cref="QemuException"/>, <see cref="IOException"/>, <see cref="SocketException"/>,
    /// <see cref="InvalidOperationException"/>) leaves the process to be discarded: call <see cref="Failed"/>.</summary>
    public VirtioBlkDriver Begin(RingAddresses? rings, bool mayWriteDisk)
    {
        _prepare.Start();
        try
        {
            var (q, blk) = Ready(rings);
            _diskChanged = mayWriteDisk;
            _errorsFrom = q.Stderr().Length;
            _caseOpen = true;
            return blk;
        }
        finally
        {
            _prepare.Stop();
        }
    }

    /// <summary>Brings the device up again with the rings where <paramref name="rings"/> puts them, in the case
    /// in progress (guest memory written so far stays).</summary>
    public VirtioBlkDriver Reconfigure(RingAddresses? rings)
    {
        var (_, blk) = Current;
        blk.RequestedRings = rings;
        blk.Initialise();
        ClearRingsLater(blk);
        return blk;
    }

    private (QemuProcess Qemu, VirtioBlkDriver Blk) Current =>
        _caseOpen && _qemu is { } q && _blk is { } b ? (q, b) : throw new InvalidOperationException("no case in progress (Begin first)");

    /// <summary>Guest memory written by the case (zeroed again before the next case).</summary>
    public void WriteGuest(ulong addr, byte[] bytes) => Touch(Current.Qemu, addr, bytes.Length, bytes);

    /// <summary>Guest memory as the guest reads it now.</summary>
    public byte[] ReadGuest(ulong addr, int length) => Current.Qemu.Qtest.Read(addr, length);

    /// <summary>A descriptor at <paramref name="index"/> of the table at <paramref name="table"/> (the ring's or an
    /// indirect one); the buffer of a device-writable one is cleared before the next case.</summary>
    public void WriteDescriptor(ulong table, int index, VringDesc d)
    {
        var (q, blk) = Current;
        if (table == blk.Desc) blk.WriteDescriptor(index, d);   // the ring is cleared before the next case (ClearRingsLater)
        else
        {
            var b = new byte[VirtioConstants.DescSize];
            d.Encode(b);
            Touch(q, table + (ulong)index * VirtioConstants.DescSize, b.Length, b);
        }
        // only device-writable buffers can change (the device reads the others)
        if (d.IsWrite) MayWrite(d.Addr, d.Len);
    }

    /// <summary>Guest RAM (the process's 64 MiB) and pc-testdev's 64 KiB of MMIO storage, [start, end): the only
    /// memory a case's cleanup zeroes. Zeroing whatever a garbage descriptor names (a device's registers, say)
    /// would change the machine.</summary>
    public static readonly (ulong Start, ulong End)[] ClearableWindows = { (0UL, 0x4000000UL), (0xff000000UL, 0xff010000UL) };

    /// <summary>Memory the device may write (the first 16 KiB of a buffer), zeroed again before the next case
    /// where it lies in <see cref="ClearableWindows"/>. A buffer that runs over the end of the address space
    /// continues at 0, as the device's accesses wrap.</summary>
    public void MayWrite(ulong addr, uint length)
    {
        int n = (int)Math.Min(length, 16384u);
        if (n == 0) return;
        ulong last = addr + (ulong)n - 1;
        var pieces = last >= addr ? new[] { (addr, n) } : new[] { (addr, (int)(0UL - addr)), (0UL, (int)(last + 1)) };
        foreach (var (at, count) in pieces) ClearLater(at, count);
    }

    /// <summary>Notes [at, at + count) for zeroing before the next case, as far as it lies in <see cref="ClearableWindows"/>.</summary>
    private void ClearLater(ulong at, int count)
    {
        foreach (var (start, end) in ClearableWindows)
        {
            // the part of [at, at + count) inside the window (a buffer may run out of RAM into unassigned space)
            ulong from = Math.Max(at, start), to = Math.Min(at + (ulong)(count - 1), end - 1);
            if (from <= to) _touched.Add(new GuestRange(from, (int)(to - from + 1)));
        }
    }

    /// <summary>The rings the driver just placed (and zeroed): the guest writes them through the ring driver and
    /// the device writes the used ring, neither of which passes <see cref="MayWrite"/>, so a case that moved
    /// them would otherwise leave its rings in memory for the next case, where the model has zeros.</summary>
    private void ClearRingsLater(VirtioBlkDriver blk)
    {
        foreach (var (addr, length) in blk.RingAreas) ClearLater(addr, length);
    }

    /// <summary>Waits until the used index reaches <paramref name="published"/>, a virtio_error line appears, or
    /// 3 s pass; true when it got there. Where the guest cannot read the used ring, QEMU's own index is polled.</summary>
    public bool WaitForCompletion(ushort published, bool usedRingReadable)
    {
        var (q, blk) = Current;
        _wait.Start();
        try
        {
            // virtio_error always prints a line (hw/virtio/virtio.c:virtio_error): without one there is no
            // reason to stop waiting early
            return usedRingReadable
                ? blk.WaitForUsed(published, TimeSpan.FromSeconds(3), () => q.Stderr().Length > _errorsFrom)
                : blk.WaitForQueueUsed(published, TimeSpan.FromSeconds(3), () => q.Stderr().Length > _errorsFrom);
        }
        finally
        {
            _wait.Stop();
        }
    }

    /// <summary>Waits (up to 2 s) until the requests popped before a virtio_error have left the block layer:
    /// their completion still unmaps them (writing bounce buffers back) although nothing more is published.
    /// The queue's state once they have.</summary>
    private static (ushort LastAvailIdx, ushort UsedIdx, int InUse) Drain(VirtioBlkDriver blk)
    {
        var queue = blk.QueueStatus();
        var drain = System.Diagnostics.Stopwatch.StartNew();
        while (queue.InUse > 0 && drain.Elapsed < TimeSpan.FromSeconds(2))
        {
            Thread.Sleep(1);
            queue = blk.QueueStatus();
        }
        return queue;
    }

    /// <summary>After a completion wait that ended without every request used (a virtio_error, or the time
    /// ran out): waits until the requests already popped have completed, as the block layer completing its
    /// I/O means (the guest may read their buffers next).</summary>
    public void DrainInFlight()
    {
        var (_, blk) = Current;
        _wait.Start();
        try
        {
            Drain(blk);
        }
        finally
        {
            _wait.Stop();
        }
    }

    /// <summary>The error lines QEMU printed since the case began.</summary>
    public string ErrorsSoFar => Current.Qemu.Stderr()[_errorsFrom..];

    /// <summary>Ends the case: whether the device broke (asked only where it did not complete), its queue once
    /// in-flight requests drained, the used ring as the guest reads it back, <paramref name="look"/>, the status
    /// byte, the disk where the case may have written it, and the error lines of the case.</summary>
    public BlkObservation End(bool completed, IReadOnlyList<GuestRange> look)
    {
        // the case stays open: the guest may still read memory back (the next Begin resets everything)
        var (q, blk) = Current;
        _wait.Start();
        // a virtio-blk request that completed was popped and pushed without a virtio_error; only ask otherwise,
        // and where asking disturbs the queue (a probe request), only once everything is observed
        bool askLater = !completed && blk.BrokenCheckDisturbs;
        bool broken = !completed && !askLater && blk.Broken();
        // stderr arrives asynchronously: give the error line a moment to show up
        // virtio_error prints one line; stderr is read on the thread pool, which a loaded machine can delay
        if (broken || askLater) q.WaitForStderr(_errorsFrom, "\n", TimeSpan.FromSeconds(askLater ? 2 : 10));
        // A broken device publishes nothing more, but requests popped before the error are still in the
        // block layer: their completion unmaps (writes bounce buffers back) and releases them. Observe
        // only once inuse has drained, as the model does after completing the I/O.
        var queue = broken || askLater ? Drain(blk) : blk.QueueStatus();
        _wait.Stop();
        _readBack.Start();
        // the used ring as the guest reads it back (from ROM or unassigned space: whatever is there)
        int usedCount = Math.Min(blk.UsedIdx(), blk.QueueSize);
        var used = Enumerable.Range(0, usedCount).Select(blk.UsedElement).ToArray();
        var bytes = look.Select(r => q.Qtest.Read(r.Addr, r.Length)).ToList();
        byte status = blk.DeviceStatus();
        // an image QEMU has not written is the initial one (QemuProcess.DiskWritten: its modification time)
        var disk = !_diskChanged ? null : q.DiskWritten ? q.ReadDisk() : (byte[])_disk.Clone();
        if (askLater)
        {
            var (probeAt, probeLength) = VirtioBlkDriver.ProbeRange;
            _touched.Add(new GuestRange(probeAt, probeLength));
            broken = blk.Broken();
        }
        var observation = new BlkObservation(used, broken, bytes, q.Stderr()[_errorsFrom..], status, null, queue, disk);
        _readBack.Stop();
        return observation;
    }

    /// <summary>A case that failed on QEMU's side (it died, hung or answered nonsense): the process is discarded
    /// (the next case gets a fresh one) and the observation says why, with the tail of its stderr.</summary>
    public BlkObservation Failed(Exception e, IReadOnlyList<GuestRange> look)
    {
        foreach (var w in new[] { _prepare, _wait, _readBack }) w.Stop();
        _caseOpen = false;
        string tail = _qemu?.StderrTail() ?? "";
        Discard();
        return new BlkObservation(Array.Empty<(uint, uint)>(), false, look.Select(_ => Array.Empty<byte>()).ToList(), tail, 0,
            $"{e.GetType().Name}: {e.Message}");
    }

    private void Touch(QemuProcess q, ulong addr, int length, byte[] bytes)
    {
        q.Qtest.Write(addr, bytes);
        _touched.Add(new GuestRange(addr, length));
    }

    /// <summary>A process with the device reset, the rings where the case wants them, and the previous case undone.</summary>
    private (QemuProcess, VirtioBlkDriver) Ready(RingAddresses? rings)
    {
        if (_qemu is { HasExited: true }) Discard();
        if (_qemu is null)
        {
            _qemu = NewProcess();
            _blk = VirtioBlkDriver.For(_transport, _qemu, RingBase);
            ProcessesStarted++;
            _blk.RequestedRings = rings;
            _blk.Initialise();
            _touched.Clear();
            ClearRingsLater(_blk);
            return (_qemu, _blk);
        }
        // Reset first: it drains requests still in flight, which could otherwise write after the cleanup.
        _blk!.RequestedRings = rings;
        _blk.Initialise();
        foreach (var r in _touched) _qemu.Qtest.Memset(r.Addr, r.Length, 0);
        _touched.Clear();
        ClearRingsLater(_blk);
        // whatever the case promised: the image's modification time says whether QEMU wrote it
        if (_qemu.DiskWritten) _qemu.RestoreDisk(_disk);
        return (_qemu, _blk);
    }

    /// <summary>Ends the current process; the next case gets a fresh one (for state QEMU keeps across a
    /// device reset, such as a leaked bounce budget: known deviation KD-2), started right away in the
    /// background so that it is ready when the next case comes.</summary>
    public void Restart()
    {
        if (_qemu is not null) Discard();
        _spare ??= Task.Run(() => new QemuProcess(_binary, _disk, _timeout, _transport, MaxBounceBufferSize));
    }

    private Task<QemuProcess>? _spare;

    /// <summary>The spare process if one was started and came up, else a new one.</summary>
    private QemuProcess NewProcess()
    {
        var spare = _spare;
        _spare = null;
        if (spare is not null)
        {
            try
            {
                return spare.GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is QemuException or IOException or SocketException)
            {
                // the spare failed to come up: start one the ordinary way (which reports its own failure)
            }
        }
        return new QemuProcess(_binary, _disk, _timeout, _transport, MaxBounceBufferSize);
    }

    private void Discard()
    {
        _qemu?.Dispose();
        _qemu = null;
        _blk = null;
        _touched.Clear();
    }

    public void Dispose()
    {
        Discard();
        if (_spare is { } spare)
        {
            _spare = null;
            try { spare.GetAwaiter().GetResult().Dispose(); }
            catch (Exception e) when (e is QemuException or IOException or SocketException) { }
        }
    }
}
