namespace Conformance.Qemu;

/// <summary>How the guest talks to virtio-blk-pci: the legacy I/O-port register block (virtio 0.9.5), or the
/// modern VERSION_1 transport (PCI capabilities, common configuration in a memory BAR) — the only one in
/// which QEMU signals DEVICE_NEEDS_RESET after a virtio_error.</summary>
public enum VirtioTransport
{
    Legacy,
    Modern,
}
