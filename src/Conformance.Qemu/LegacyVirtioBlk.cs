using Conformance.Model.Virtio;

namespace Conformance.Qemu;

/// <summary>
/// The legacy virtio-pci transport of virtio-blk-pci at 00:04.0 (docs/qemu-rules.md, "Driving QEMU over qtest", QT-3): BAR0 as
/// I/O at 0xc000, bus mastering on, the legacy register block, queue 0 of the size the device reports, no
/// features negotiated.
/// </summary>
public sealed class LegacyVirtioBlk(QemuProcess qemu, ulong ringBase) : VirtioBlkDriver(qemu, ringBase)
{
    private const ushort Bar = 0xc000;

    protected override void Enumerate()
    {
        uint id = ConfigRead32(0);
        if (id != 0x10011af4) throw new QemuException($"00:04.0 is 0x{id:x8}, not a legacy virtio-blk (1af4:1001)", Qemu.StderrTail());
        ConfigWrite32(0x10, 0xffffffff);
        ConfigRead32(0x10);
        ConfigWrite32(0x10, Bar);
        ConfigWrite16(0x04, 0x5);
    }

    protected override void Bringup()
    {
        Q.OutB(Bar + 0x12, 0);      // reset
        Q.OutB(Bar + 0x12, 1);      // ACKNOWLEDGE
        Q.OutB(Bar + 0x12, 3);      // DRIVER
        Q.InL(Bar + 0x00);          // host features
        Q.OutL(Bar + 0x04, 0);      // no features
        Q.OutW(Bar + 0x0e, 0);      // queue 0
        QueueSize = Q.InW(Bar + 0x0c);
        PlaceRings();
        if (Desc % 4096 != 0 || Avail != VirtioConstants.LegacyAvail(Desc, QueueSize) || Used != VirtioConstants.LegacyUsed(Desc, QueueSize) || Desc >> 12 > uint.MaxValue)
            throw new QemuException($"the legacy transport lays its rings out from one page frame; 0x{Desc:x}/0x{Avail:x}/0x{Used:x} is not that layout");
        ClearRing();
        Q.OutL(Bar + 0x08, (uint)(Desc >> 12));
        Q.OutB(Bar + 0x12, 7);      // DRIVER_OK
    }

    public override void Kick() => Q.OutW(Bar + 0x10, 0);

    public override byte DeviceStatus() => Q.InB(Bar + 0x12);

    /// <summary>The legacy status register never shows DEVICE_NEEDS_RESET (QEMU sets it only for VERSION_1
    /// drivers), so a probe request asks the device itself.</summary>
    protected override bool ProbeDisturbs => true;

    protected override bool BrokenWithoutStatusQuery() => ProbeBroken();
}
