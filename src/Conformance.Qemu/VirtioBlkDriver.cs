using System.Buffers.Binary;
using Conformance.Model.Virtio;

namespace Conformance.Qemu;

/// <summary>Where a split queue's three rings are in guest memory.</summary>
public readonly record struct RingAddresses(ulong Desc, ulong Avail, ulong Used);

/// <summary>
/// What a guest driver for virtio-blk-pci at 00:04.0 does over qtest whatever the transport, in the manner
/// of QEMU's libqos: PCI configuration through 0xcf8/0xcfc, one split queue of the size the device reports
/// (QEMU 7.2 and 11.x report 256 for the legacy transport, 10.0.13 1024) laid out as the legacy interface
/// requires (VIRTIO 1.2 §2.7.2: the available ring right after the descriptor table, the used ring at the
/// next 4096-byte boundary; a modern driver may use the same places), descriptors and the available ring
/// written into guest memory, the used ring polled.
/// </summary>
public abstract class VirtioBlkDriver
{
    protected const int Slot = 4;

    protected VirtioBlkDriver(QemuProcess qemu, ulong ringBase)
    {
        Qemu = qemu;
        Q = qemu.Qtest;
        RingBase = ringBase;
    }

    public QemuProcess Qemu { get; }
    protected QtestClient Q { get; }
    /// <summary>Where the rings go by default: the legacy layout from here.</summary>
    public ulong RingBase { get; }
    /// <summary>The size of queue 0 as the device reports it (read during bring-up).</summary>
    public int QueueSize { get; protected set; }

    /// <summary>Where the next bring-up puts the rings (null: the legacy layout at <see cref="RingBase"/>).
    /// The legacy transport takes only a 4096-aligned descriptor table with the rest laid out after it.</summary>
    public RingAddresses? RequestedRings { get; set; }

    /// <summary>Where queue 0's rings are now.</summary>
    public RingAddresses Rings { get; private set; }

    public ulong Desc => Rings.Desc;
    public ulong Avail => Rings.Avail;
    public ulong Used => Rings.Used;

    /// <summary>The driver side of queue 0's split ring, over qtest (the suite's one ring driver).</summary>
    public SplitRingDriver Ring { get; private set; } = null!;

    /// <summary>Called by a transport's bring-up once the queue size is known: fixes the ring addresses and
    /// starts the ring driver from index 0.</summary>
    protected void PlaceRings()
    {
        Rings = RequestedRings ?? new RingAddresses(RingBase, VirtioConstants.LegacyAvail(RingBase, QueueSize), VirtioConstants.LegacyUsed(RingBase, QueueSize));
        Ring = new SplitRingDriver(Q, QueueSize, Rings.Desc, Rings.Avail, Rings.Used);
    }


    /// <summary>Bytes from the descriptor table to the end of the used ring (with used_event/avail_event).</summary>
    public static ulong LegacyRingBytes(ulong desc, int size) => VirtioConstants.LegacyUsed(desc, size) + 4 + 8 * (ulong)size + 2 - desc;

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
    }

    private bool _enumerated;

    /// <summary>Checks the device identity, assigns the BARs, enables decoding and bus mastering.</summary>
    protected abstract void Enumerate();

    /// <summary>Reset, negotiation, queue 0 set up, DRIVER_OK.</summary>
    protected abstract void Bringup();

    /// <summary>Where queue 0's rings lie: the descriptor table, and the available and used rings with their
    /// event fields.</summary>
    public (ulong Addr, int Length)[] RingAreas =>
    [
        (Desc, (int)VirtioConstants.DescTableSize(QueueSize)),
        (Avail, (int)VirtioConstants.AvailSize(QueueSize, eventIdx: true)),
        (Used, (int)VirtioConstants.UsedSize(QueueSize, eventIdx: true)),
    ];

    /// <summary>Zeroes the ring area (descriptor table, avail and used rings).</summary>
    protected void ClearRing()
    {
        foreach (var (addr, length) in RingAreas) Q.Memset(addr, length, 0);
    }

    public abstract void Kick();

    /// <summary>The device status byte as the driver reads it (legacy: the status register; modern:
    /// common configuration device_status, with DEVICE_NEEDS_RESET = 0x40 after a virtio_error).</summary>
    public abstract byte DeviceStatus();

    public void WriteDescriptor(int index, VringDesc desc) => Ring.WriteDescriptor(index, desc);

    public void Publish(ushort head) => Ring.Publish(new[] { head });

    public ushort UsedIdx() => Ring.UsedIdx();

    /// <summary>Polls the used index until it reaches <paramref name="target"/> or the time runs out
    /// (with ioeventfd the device works in the background; a broken device never gets there, and
    /// <paramref name="gaveUp"/>, asked every few polls, says when to stop waiting for it).</summary>
    public bool WaitForUsed(ushort target, TimeSpan timeout, Func<bool> gaveUp)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int polls = 0;
        while (clock.Elapsed < timeout)
        {
            if (UsedIdx() == target) return true;
            if (++polls % 8 == 0 && gaveUp()) return UsedIdx() == target;
            // each poll is a qtest round trip (tens of microseconds); back off only once the request is slow
            if (clock.ElapsedMilliseconds > 20) Thread.Sleep(1);
        }
        return UsedIdx() == target;
    }

    /// <summary>Like <see cref="WaitForUsed"/>, for a used ring the guest cannot read back (in ROM or unassigned
    /// space): polls QEMU's own used index (x-query-virtio-queue-status).</summary>
    public bool WaitForQueueUsed(ushort target, TimeSpan timeout, Func<bool> gaveUp)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int polls = 0;
        while (clock.Elapsed < timeout)
        {
            if (QueueStatus().UsedIdx == target) return true;
            if (++polls % 8 == 0 && gaveUp()) return QueueStatus().UsedIdx == target;
            if (clock.ElapsedMilliseconds > 20) Thread.Sleep(1);
        }
        return QueueStatus().UsedIdx == target;
    }

    public (uint Id, uint Len) UsedElement(int slot) => Ring.UsedElement(slot);

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

    /// <summary>
    /// Whether the device is broken (a virtio_error happened): QMP x-query-virtio-status where the binary
    /// answers it; where it aborts QEMU instead (<see cref="QemuBinary.StatusQueryAborts"/>, QEMU 11.1.3), the
    /// transport's own evidence (<see cref="BrokenWithoutStatusQuery"/>).
    /// </summary>
    public bool Broken()
    {
        if (Qemu.Binary.StatusQueryAborts) return BrokenWithoutStatusQuery();
        var status = Qemu.Qmp.Execute("x-query-virtio-status", new System.Text.Json.Nodes.JsonObject { ["path"] = "/machine/peripheral/blk0/virtio-backend" });
        return status?["broken"]?.GetValue<bool>() ?? false;
    }

    /// <summary>What shows that the device is broken without asking QEMU's status query.</summary>
    protected abstract bool BrokenWithoutStatusQuery();

    /// <summary>Whether <see cref="Broken"/> changes the queue (a probe request): then ask it last.</summary>
    public bool BrokenCheckDisturbs => Qemu.Binary.StatusQueryAborts && ProbeDisturbs;

    protected abstract bool ProbeDisturbs { get; }

    /// <summary>Where a probe request lives: the top of the 64 MiB of RAM, away from every case's buffers.</summary>
    private const ulong ProbeArea = 0x3ff0000;

    /// <summary>
    /// A broken device pops nothing (hw/virtio/virtio.c:virtqueue_pop returns NULL when vdev->broken), so a
    /// well-formed GET_ID request published and kicked shows it: QEMU started with ioeventfd=off handles the
    /// kick inside the port write, and last_avail_idx has moved when the write returns, or never will.
    /// The device is reset before the next case, so the probe leaves nothing behind.
    /// </summary>
    protected bool ProbeBroken()
    {
        var before = QueueStatus().LastAvailIdx;
        int at = QueueSize - 3;
        var header = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 8);   // VIRTIO_BLK_T_GET_ID
        Q.Write(ProbeArea, header);
        WriteDescriptor(at, new VringDesc(ProbeArea, 16, VirtioConstants.DescFlagNext, (ushort)(at + 1)));
        WriteDescriptor(at + 1, new VringDesc(ProbeArea + 0x100, 20, VirtioConstants.DescFlagWrite | VirtioConstants.DescFlagNext, (ushort)(at + 2)));
        WriteDescriptor(at + 2, new VringDesc(ProbeArea + 0x200, 1, VirtioConstants.DescFlagWrite, 0));
        Publish((ushort)at);
        Kick();
        return QueueStatus().LastAvailIdx == before;
    }

    /// <summary>The guest memory a probe may have written (the session clears it before the next case).</summary>
    public static (ulong Addr, int Length) ProbeRange => (ProbeArea, 0x300);
}
