using System.Buffers.Binary;
using Conformance.Model.Virtio;

namespace Conformance.Qemu;

/// <summary>
/// What a guest driver for virtio-blk-pci at 00:04.0 does over qtest whatever the transport, in the manner
/// of QEMU's libqos: PCI configuration through 0xcf8/0xcfc, one split queue of 256 at a fixed place (the
/// legacy layout: avail at +0x1000, used at +0x2000, which a modern driver may use too), descriptors and
/// the available ring written into guest memory, the used ring polled.
/// </summary>
public abstract class VirtioBlkDriver
{
    protected const int Slot = 4;
    private ushort _availIdx;

    protected VirtioBlkDriver(QemuProcess qemu, ulong ringBase)
    {
        Qemu = qemu;
        Q = qemu.Qtest;
        RingBase = ringBase;
    }

    public QemuProcess Qemu { get; }
    protected QtestClient Q { get; }
    public ulong RingBase { get; }
    public int QueueSize { get; protected set; }
    public ulong Avail => RingBase + 0x1000;
    public ulong Used => RingBase + 0x2000;

    public static VirtioBlkDriver For(VirtioTransport transport, QemuProcess qemu, ulong ringBase) => transport switch
    {
        VirtioTransport.Legacy => new LegacyVirtioBlk(qemu, ringBase),
        _ => new ModernVirtioBlk(qemu, ringBase),
    };

    private void ConfigAddress(int reg) => Q.OutL(0xcf8, 0x80000000u | (uint)(Slot << 11) | (uint)(reg & 0xfc));

    public uint ConfigRead32(int reg)
    {
        ConfigAddress(reg);
        return Q.InL(0xcfc);
    }

    public byte ConfigRead8(int reg)
    {
        ConfigAddress(reg);
        return Q.InB((ushort)(0xcfc + (reg & 3)));
    }

    public void ConfigWrite32(int reg, uint value)
    {
        ConfigAddress(reg);
        Q.OutL(0xcfc, value);
    }

    public void ConfigWrite16(int reg, ushort value)
    {
        ConfigAddress(reg);
        Q.OutW((ushort)(0xcfc + (reg & 2)), value);
    }

    /// <summary>Enumerate, assign the BARs, reset, negotiate, set up queue 0 and set DRIVER_OK.</summary>
    public void Initialise()
    {
        // A virtio reset does not touch PCI configuration: enumeration and BAR assignment happen once.
        if (!_enumerated) Enumerate();
        _enumerated = true;
        Bringup();
        _availIdx = 0;
    }

    private bool _enumerated;

    /// <summary>Checks the device identity, assigns the BARs, enables decoding and bus mastering.</summary>
    protected abstract void Enumerate();

    /// <summary>Reset, negotiation, queue 0 set up, DRIVER_OK.</summary>
    protected abstract void Bringup();

    /// <summary>Zeroes the ring area (descriptor table, avail and used rings).</summary>
    protected void ClearRing() => Q.Memset(RingBase, 0x3000, 0);

    public abstract void Kick();

    /// <summary>The device status byte as the driver reads it (legacy: the status register; modern:
    /// common configuration device_status, with DEVICE_NEEDS_RESET = 0x40 after a virtio_error).</summary>
    public abstract byte DeviceStatus();

    public void WriteDescriptor(int index, VringDesc desc)
    {
        var b = new byte[VirtioConstants.DescSize];
        desc.Encode(b);
        Q.Write(RingBase + (ulong)index * VirtioConstants.DescSize, b);
    }

    public void Publish(ushort head)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, head);
        Q.Write(VirtioConstants.AvailRingAddr(Avail, _availIdx % QueueSize), b);
        _availIdx++;
        BinaryPrimitives.WriteUInt16LittleEndian(b, _availIdx);
        Q.Write(VirtioConstants.AvailIdxAddr(Avail), b);
    }

    public ushort UsedIdx() => BinaryPrimitives.ReadUInt16LittleEndian(Q.Read(VirtioConstants.UsedIdxAddr(Used), 2));

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
        var b = Q.Read(VirtioConstants.UsedElemAddr(Used, slot), 8);
        return (BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4)));
    }

    /// <summary>QMP x-query-virtio-queue-status of queue 0: (last_avail_idx, used_idx, inuse) as QEMU's
    /// VirtQueue holds them.</summary>
    public (ushort LastAvailIdx, ushort UsedIdx, int InUse) QueueStatus()
    {
        var q = Qemu.Qmp.Execute("x-query-virtio-queue-status", new System.Text.Json.Nodes.JsonObject
        {
            ["path"] = "/machine/peripheral/blk0/virtio-backend",
            ["queue"] = 0,
        }) ?? throw new QemuException("x-query-virtio-queue-status returned nothing", Qemu.StderrTail());
        return ((ushort)q["last-avail-idx"]!.GetValue<int>(), (ushort)q["used-idx"]!.GetValue<int>(), q["inuse"]!.GetValue<int>());
    }

    /// <summary>QMP x-query-virtio-status: whether the device is broken.</summary>
    public bool Broken()
    {
        var status = Qemu.Qmp.Execute("x-query-virtio-status", new System.Text.Json.Nodes.JsonObject { ["path"] = "/machine/peripheral/blk0/virtio-backend" });
        return status?["broken"]?.GetValue<bool>() ?? false;
    }
}
