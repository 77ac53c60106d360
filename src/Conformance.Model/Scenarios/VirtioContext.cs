using Conformance.Model.Virtio;

namespace Conformance.Model.Scenarios;

/// <summary>The virtio pieces of a scenario run: device, virtio-blk front, guest driver, named elements.</summary>
public sealed class VirtioContext
{
    internal VirtioContext(VirtioDevice device, VirtioBlk blk, GuestDriver driver)
    {
        Device = device;
        Blk = blk;
        Driver = driver;
    }

    public VirtioDevice Device { get; }
    public VirtioBlk Blk { get; }
    public GuestDriver Driver { get; }
    public Dictionary<string, VirtQueueElement> Elements { get; } = new();

    /// <summary>The disk's initial contents: a deterministic pattern, so reads return recognisable bytes.</summary>
    public static byte[] InitialDisk(int sectors)
    {
        var disk = new byte[sectors * VirtioBlk.SectorSize];
        for (int i = 0; i < disk.Length; i++) disk[i] = ByteStore.Pattern(0xd15c, (ulong)i);
        return disk;
    }
}
