using Conformance.Model.Virtio;

namespace Conformance.Model.Scenarios;

/// <summary>The virtio pieces of a scenario run: device, virtio-blk front, guest driver, named elements.</summary>
public sealed class VirtioContext
{
    internal VirtioContext(VirtioDevice device, VirtioBlk blk, SplitRingDriver driver)
    {
        Device = device;
        Blk = blk;
        Driver = driver;
    }

    public VirtioDevice Device { get; }
    public VirtioBlk Blk { get; }
    /// <summary>The guest's ring driver (a new one when the device is set up again after a reset).</summary>
    public SplitRingDriver Driver { get; internal set; }
    public Dictionary<string, VirtQueueElement> Elements { get; } = new();

    /// <summary>The disk's initial contents: a deterministic pattern, so reads return recognisable bytes.</summary>
    public static byte[] InitialDisk(int sectors)
    {
        // The pattern costs a few milliseconds per MiB and every virtio-blk run starts from it: computed once
        // per (small) size, handed out as a copy (the device writes into its disk).
        if (sectors > CachedSectorsMax) return Generate(sectors);
        return (byte[])Images.GetOrAdd(sectors, Generate).Clone();
    }

    private const int CachedSectorsMax = 4096;

    private static byte[] Generate(int sectors)
    {
        var disk = new byte[sectors * VirtioBlk.SectorSize];
        for (int i = 0; i < disk.Length; i++) disk[i] = ByteStore.Pattern(0xd15c, (ulong)i);
        return disk;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, byte[]> Images = new();
}
