namespace Conformance.Model.Virtio;

/// <summary>Per-queue state of a split virtqueue (hw/virtio/virtio.c: struct VirtQueue).</summary>
public sealed class VirtQueue
{
    internal VirtQueue(int index) => Index = index;

    public int Index { get; }
    public int Num { get; internal set; }
    public ulong DescAddr { get; internal set; }
    public ulong AvailAddr { get; internal set; }
    public ulong UsedAddr { get; internal set; }

    /// <summary>vring.avail != 0: the queue was set up.</summary>
    public bool Ready => AvailAddr != 0 && Num > 0;

    public ushort LastAvailIdx { get; internal set; }
    public ushort ShadowAvailIdx { get; internal set; }
    public ushort UsedIdx { get; internal set; }
    public int InUse { get; internal set; }
    public ushort SignalledUsed { get; internal set; }
    public bool SignalledUsedValid { get; internal set; }
    public bool Notification { get; internal set; } = true;

    /// <summary>The ring caches (desc, avail, used), or null when virtio_init_region_cache failed.</summary>
    internal RegionCache[]? Caches { get; set; }
}
