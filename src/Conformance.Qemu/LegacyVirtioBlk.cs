using System.Buffers.Binary;
using Conformance.Model.Virtio;

namespace Conformance.Qemu;

/// <summary>
/// A guest driver for QEMU's legacy virtio-blk-pci at 00:04.0 over qtest (../shared/qemu-qtest-notes.md):
/// PCI config through 0xcf8/0xcfc, BAR0 as I/O at 0xc000, bus mastering on, the legacy register block,
/// one queue of 256 with the legacy layout (avail at +0x1000, used at +0x2000), no features negotiated.
/// </summary>
public sealed class LegacyVirtioBlk
{
    private const ushort Bar = 0xc000;
    private const int Slot = 4;
    private readonly QtestClient _q;
    private ushort _availIdx;

    public LegacyVirtioBlk(QemuProcess qemu, ulong ringBase)
    {
        Qemu = qemu;
        _q = qemu.Qtest;
        RingBase = ringBase;
    }

    public QemuProcess Qemu { get; }
    public ulong RingBase { get; }
    public int QueueSize { get; private set; }
    public ulong Avail => RingBase + 0x1000;
    public ulong Used => RingBase + 0x2000;

    private void ConfigAddress(int reg) => _q.OutL(0xcf8, 0x80000000u | (uint)(Slot << 11) | (uint)(reg & 0xfc));

    public uint ConfigRead32(int reg)
    {
        ConfigAddress(reg);
        return _q.InL(0xcfc);
    }

    public void ConfigWrite32(int reg, uint value)
    {
        ConfigAddress(reg);
        _q.OutL(0xcfc, value);
    }

    public void ConfigWrite16(int reg, ushort value)
    {
        ConfigAddress(reg);
        _q.OutW((ushort)(0xcfc + (reg & 2)), value);
    }

    /// <summary>Enumerate, assign BAR0, enable I/O and bus mastering, reset and set up queue 0.</summary>
    public void Initialise()
    {
        uint id = ConfigRead32(0);
        if (id != 0x10011af4) throw new QemuException($"00:04.0 is 0x{id:x8}, not a legacy virtio-blk (1af4:1001)", Qemu.StderrTail());
        ConfigWrite32(0x10, 0xffffffff);
        ConfigRead32(0x10);
        ConfigWrite32(0x10, Bar);
        ConfigWrite16(0x04, 0x5);
        _q.OutB(Bar + 0x12, 0);      // reset
        _q.OutB(Bar + 0x12, 1);      // ACKNOWLEDGE
        _q.OutB(Bar + 0x12, 3);      // DRIVER
        _q.InL(Bar + 0x00);          // host features
        _q.OutL(Bar + 0x04, 0);      // no features
        _q.OutW(Bar + 0x0e, 0);      // queue 0
        QueueSize = _q.InW(Bar + 0x0c);
        _q.Write(RingBase, new byte[0x3000]);
        _q.OutL(Bar + 0x08, (uint)(RingBase >> 12));
        _q.OutB(Bar + 0x12, 7);      // DRIVER_OK
        _availIdx = 0;
    }

    public void WriteDescriptor(int index, VringDesc desc)
    {
        var b = new byte[VirtioConstants.DescSize];
        desc.Encode(b);
        _q.Write(RingBase + (ulong)index * VirtioConstants.DescSize, b);
    }

    public void Publish(ushort head)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, head);
        _q.Write(VirtioConstants.AvailRingAddr(Avail, _availIdx % QueueSize), b);
        _availIdx++;
        BinaryPrimitives.WriteUInt16LittleEndian(b, _availIdx);
        _q.Write(VirtioConstants.AvailIdxAddr(Avail), b);
    }

    public void Kick() => _q.OutW(Bar + 0x10, 0);

    public ushort UsedIdx() => BinaryPrimitives.ReadUInt16LittleEndian(_q.Read(VirtioConstants.UsedIdxAddr(Used), 2));

    /// <summary>Polls the used index until it reaches <paramref name="target"/> or the time runs out
    /// (with ioeventfd the device works in the background; a broken device never gets there).</summary>
    public bool WaitForUsed(ushort target, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int polls = 0;
        while (clock.Elapsed < timeout)
        {
            if (UsedIdx() == target) return true;
            // a broken device will never get there: ask every few polls instead of waiting out the timeout
            if (++polls % 8 == 0 && Broken()) return UsedIdx() == target;
            // each poll is a qtest round trip (tens of microseconds); back off only once the request is slow
            if (clock.ElapsedMilliseconds > 20) Thread.Sleep(1);
        }
        return UsedIdx() == target;
    }

    public (uint Id, uint Len) UsedElement(int slot)
    {
        var b = _q.Read(VirtioConstants.UsedElemAddr(Used, slot), 8);
        return (BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4)));
    }

    /// <summary>QMP x-query-virtio-status: whether the device is broken.</summary>
    public bool Broken()
    {
        var status = Qemu.Qmp.Execute("x-query-virtio-status", new System.Text.Json.Nodes.JsonObject { ["path"] = "/machine/peripheral/blk0/virtio-backend" });
        return status?["broken"]?.GetValue<bool>() ?? false;
    }
}
