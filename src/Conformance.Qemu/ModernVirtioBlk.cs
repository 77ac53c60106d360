namespace Conformance.Qemu;

/// <summary>
/// The modern (VERSION_1) virtio-pci transport of virtio-blk-pci at 00:04.0 (VIRTIO 1.2 §4.1.4): the
/// vendor capabilities in PCI configuration space locate the common configuration and the notification
/// area in a memory BAR (QEMU 7.2 puts them in BAR4, 64-bit); the driver negotiates VIRTIO_F_VERSION_1 (and
/// VIRTIO_F_ACCESS_PLATFORM where offered) and nothing else, sets FEATURES_OK, gives queue 0 its three ring addresses and enables it. After a
/// virtio_error QEMU sets DEVICE_NEEDS_RESET in device_status (hw/virtio/virtio.c:virtio_error).
/// </summary>
public sealed class ModernVirtioBlk(QemuProcess qemu, ulong ringBase) : VirtioBlkDriver(qemu, ringBase)
{
    /// <summary>Where BAR4 is placed: unassigned in q35 below the ioapic (0xfec00000) and pc-testdev (0xff000000).</summary>
    public const ulong BarAddress = 0xfe000000;

    private const byte CapVendor = 0x09, CommonCfg = 1, NotifyCfg = 2;
    private ulong _common, _notify;
    private uint _notifyMultiplier;

    // struct virtio_pci_common_cfg offsets (VIRTIO 1.2 §4.1.4.3)
    private const ulong DeviceFeatureSelect = 0x00, DeviceFeature = 0x04, DriverFeatureSelect = 0x08, DriverFeature = 0x0c;
    private const ulong Status = 0x14, QueueSelect = 0x16, QueueSizeReg = 0x18, QueueEnable = 0x1c, QueueNotifyOff = 0x1e;
    private const ulong QueueDesc = 0x20, QueueDriver = 0x28, QueueDevice = 0x30;

    protected override void Enumerate()
    {
        uint id = ConfigRead32(0);
        if (id != 0x10421af4) throw new QemuException($"00:04.0 is 0x{id:x8}, not a modern virtio-blk (1af4:1042)", Qemu.StderrTail());
        // BAR4/BAR5: a 64-bit memory BAR
        ConfigWrite32(0x20, 0xffffffff);
        ConfigRead32(0x20);
        ConfigWrite32(0x20, (uint)BarAddress);
        ConfigWrite32(0x24, (uint)(BarAddress >> 32));
        ConfigWrite16(0x04, 0x6);   // memory space + bus master
        FindCapabilities();
    }

    protected override void Bringup()
    {
        Q.WriteB(_common + Status, 0);   // reset
        Q.WriteB(_common + Status, 1);   // ACKNOWLEDGE
        Q.WriteB(_common + Status, 3);   // DRIVER
        Q.WriteL(_common + DeviceFeatureSelect, 1);
        uint high = Q.ReadL(_common + DeviceFeature);
        if ((high & 1) == 0) throw new QemuException("the device does not offer VIRTIO_F_VERSION_1", Qemu.StderrTail());
        Q.WriteL(_common + DriverFeatureSelect, 0);
        Q.WriteL(_common + DriverFeature, 0);
        Q.WriteL(_common + DriverFeatureSelect, 1);
        // VIRTIO_F_VERSION_1 (bit 32), and VIRTIO_F_ACCESS_PLATFORM (bit 33) where the device offers it
        // (iommu_platform=on: then the device DMAs through its own bus-master address space)
        Q.WriteL(_common + DriverFeature, 1 | (high & 2));
        Q.WriteB(_common + Status, 0xb);        // FEATURES_OK
        if ((Q.ReadB(_common + Status) & 0x8) == 0) throw new QemuException("the device refused FEATURES_OK", Qemu.StderrTail());
        Q.WriteW(_common + QueueSelect, 0);
        QueueSize = Q.ReadW(_common + QueueSizeReg);
        PlaceRings();
        ClearRing();
        WriteAddress(_common + QueueDesc, Desc);
        WriteAddress(_common + QueueDriver, Avail);
        WriteAddress(_common + QueueDevice, Used);
        _notifyQueue0 = _notify + (ulong)Q.ReadW(_common + QueueNotifyOff) * _notifyMultiplier;
        Q.WriteW(_common + QueueEnable, 1);
        Q.WriteB(_common + Status, 0xf);        // DRIVER_OK
    }

    private ulong _notifyQueue0;

    private void WriteAddress(ulong reg, ulong value)
    {
        Q.WriteL(reg, (uint)value);
        Q.WriteL(reg + 4, (uint)(value >> 32));
    }

    /// <summary>Walks the capability list (VIRTIO 1.2 §4.1.4: struct virtio_pci_cap, cfg_type at +3,
    /// bar at +4, offset at +8; the notify capability's multiplier at +16).</summary>
    private void FindCapabilities()
    {
        int ptr = ConfigRead8(0x34);
        _common = _notify = 0;
        for (int guard = 0; ptr != 0 && guard < 48; guard++)
        {
            byte vendor = ConfigRead8(ptr);
            if (vendor == CapVendor)
            {
                byte type = ConfigRead8(ptr + 3), bar = ConfigRead8(ptr + 4);
                uint offset = ConfigRead32(ptr + 8);
                if (bar == 4 && type == CommonCfg) _common = BarAddress + offset;
                if (bar == 4 && type == NotifyCfg)
                {
                    _notify = BarAddress + offset;
                    _notifyMultiplier = ConfigRead32(ptr + 16);
                }
            }
            ptr = ConfigRead8(ptr + 1);
        }
        if (_common == 0 || _notify == 0) throw new QemuException("no common or notify capability in BAR4", Qemu.StderrTail());
    }

    public override void Kick() => Q.WriteW(_notifyQueue0, 0);

    public override byte DeviceStatus() => Q.ReadB(_common + Status);

    /// <summary>virtio_error sets DEVICE_NEEDS_RESET for a VERSION_1 driver (hw/virtio/virtio.c:virtio_error).</summary>
    protected override bool ProbeDisturbs => false;

    protected override bool BrokenWithoutStatusQuery() => (DeviceStatus() & 0x40) != 0;
}
