using System.Net.Sockets;
using Conformance.Model.Virtio;

namespace Conformance.Qemu;

/// <summary>One guest write before the request: bytes at an address.</summary>
public sealed record GuestWrite(ulong Addr, byte[] Bytes);

/// <summary>A range of guest memory to read back after the request.</summary>
public sealed record GuestRange(ulong Addr, int Length);

/// <summary>
/// One virtio-blk request case: guest writes (the 16-byte header among them), the descriptor table
/// (index, descriptor), head 0 published and kicked, then the ranges to read back.
/// </summary>
public sealed record BlkRequestCase(IReadOnlyList<GuestWrite> Writes, IReadOnlyList<(int Index, VringDesc Desc)> Descriptors, IReadOnlyList<GuestRange> Look);

/// <summary>What QEMU did with a case: used elements, the broken flag, the bytes read back, the error lines
/// printed during the case, the device status byte the driver reads afterwards (DEVICE_NEEDS_RESET 0x40
/// shows only on the modern transport), and, if QEMU died or hung, why (the next case then gets a fresh
/// process).</summary>
public sealed record BlkObservation(IReadOnlyList<(uint Id, uint Len)> Used, bool Broken, IReadOnlyList<byte[]> Bytes, string Errors, byte DeviceStatus, string? QemuFailure);

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

    public const ulong RingBase = 0x100000;

    public VirtioBlkSession(QemuBinary binary, byte[] disk, TimeSpan? timeout = null, VirtioTransport transport = VirtioTransport.Legacy)
    {
        _transport = transport;
        _binary = binary;
        _disk = disk;
        _timeout = timeout ?? TimeSpan.FromSeconds(10);
    }

    public VirtioTransport Transport => _transport;

    /// <summary>QEMU processes started so far (1 + restarts after failures).</summary>
    public int ProcessesStarted { get; private set; }

    /// <summary>The process of the current case (null between a failure and the next case).</summary>
    public QemuProcess? Process => _qemu;

    public BlkObservation Run(BlkRequestCase c)
    {
        try
        {
            var (q, blk) = Ready();
            int errorsFrom = q.Stderr().Length;
            foreach (var w in c.Writes) Touch(q, w.Addr, w.Bytes.Length, w.Bytes);
            foreach (var (i, d) in c.Descriptors)
            {
                blk.WriteDescriptor(i, d);
                _touched.Add(new GuestRange(d.Addr, (int)Math.Min(d.Len, 16384u)));
            }
            foreach (var r in c.Look) _touched.Add(r);
            blk.Publish(0);
            blk.Kick();
            bool completed = blk.WaitForUsed(1, TimeSpan.FromSeconds(3));
            bool broken = blk.Broken();
            // stderr arrives asynchronously: give the error line a moment to show up
            var deadline = DateTime.UtcNow.AddSeconds(1);
            while (broken && !q.Stderr()[errorsFrom..].Contains("virtio") && DateTime.UtcNow < deadline) Thread.Sleep(5);
            var used = completed ? new[] { blk.UsedElement(0) } : Array.Empty<(uint, uint)>();
            var bytes = c.Look.Select(r => q.Qtest.Read(r.Addr, r.Length)).ToList();
            return new BlkObservation(used, broken, bytes, q.Stderr()[errorsFrom..], blk.DeviceStatus(), null);
        }
        catch (Exception e) when (e is QemuException or IOException or SocketException or InvalidOperationException)
        {
            string tail = _qemu?.StderrTail() ?? "";
            Discard();
            return new BlkObservation(Array.Empty<(uint, uint)>(), false, c.Look.Select(_ => Array.Empty<byte>()).ToList(), tail, 0,
                $"{e.GetType().Name}: {e.Message}");
        }
    }

    private void Touch(QemuProcess q, ulong addr, int length, byte[] bytes)
    {
        q.Qtest.Write(addr, bytes);
        _touched.Add(new GuestRange(addr, length));
    }

    /// <summary>A process with the device reset and the previous case undone.</summary>
    private (QemuProcess, VirtioBlkDriver) Ready()
    {
        if (_qemu is { HasExited: true }) Discard();
        if (_qemu is null)
        {
            _qemu = new QemuProcess(_binary, _disk, _timeout, _transport);
            _blk = VirtioBlkDriver.For(_transport, _qemu, RingBase);
            ProcessesStarted++;
            _blk.Initialise();
            _touched.Clear();
            return (_qemu, _blk);
        }
        // Reset first: it drains requests still in flight, which could otherwise write after the cleanup.
        _blk!.Initialise();
        foreach (var r in _touched.Where(r => r.Length > 0)) _qemu.Qtest.Write(r.Addr, new byte[r.Length]);
        _touched.Clear();
        _qemu.RestoreDisk(_disk);
        return (_qemu, _blk);
    }

    private void Discard()
    {
        _qemu?.Dispose();
        _qemu = null;
        _blk = null;
        _touched.Clear();
    }

    public void Dispose() => Discard();
}
