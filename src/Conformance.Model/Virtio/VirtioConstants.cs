namespace Conformance.Model.Virtio;

/// <summary>Ring layout constants (VIRTIO 1.2 §2.7; include/standard-headers/linux/virtio_ring.h).</summary>
public static class VirtioConstants
{
    public const ushort DescFlagNext = 1;
    public const ushort DescFlagWrite = 2;
    public const ushort DescFlagIndirect = 4;
    public const ushort AvailFlagNoInterrupt = 1;
    public const ushort UsedFlagNoNotify = 1;
    public const int DescSize = 16;

    /// <summary>VIRTQUEUE_MAX_SIZE: queue sizes and scatter-gather entries per element.</summary>
    public const int MaxQueueSize = 1024;

    public const int FeatureNotifyOnEmpty = 24;
    public const int FeatureIndirectDesc = 28;
    public const int FeatureEventIdx = 29;
    public const int FeatureVersion1 = 32;

    /// <summary>VIRTIO_CONFIG_S_NEEDS_RESET.</summary>
    public const byte StatusNeedsReset = 0x40;

    public static ulong DescTableSize(int num) => (ulong)(DescSize * num);
    public static ulong AvailSize(int num, bool eventIdx) => (ulong)(4 + 2 * num + (eventIdx ? 2 : 0));
    public static ulong UsedSize(int num, bool eventIdx) => (ulong)(4 + 8 * num + (eventIdx ? 2 : 0));

    // Split-ring field addresses (VIRTIO 1.2 §2.7.6, §2.7.8): avail = flags u16, idx u16, ring[num] u16,
    // used_event u16; used = flags u16, idx u16, ring[num] {id u32, len u32}, avail_event u16.
    public static ulong AvailIdxAddr(ulong avail) => avail + 2;
    public static ulong AvailRingAddr(ulong avail, int i) => avail + 4 + 2 * (ulong)i;
    public static ulong UsedEventAddr(ulong avail, int num) => AvailRingAddr(avail, num);
    public static ulong UsedIdxAddr(ulong used) => used + 2;
    public static ulong UsedElemAddr(ulong used, int i) => used + 4 + 8 * (ulong)i;
    public static ulong AvailEventAddr(ulong used, int num) => UsedElemAddr(used, num);

    /// <summary>The legacy layout of a split ring whose descriptor table is at <paramref name="desc"/> (VIRTIO 1.2
    /// §2.7.2; hw/virtio/virtio.c:virtio_queue_update_rings): the available ring right after the descriptors,
    /// the used ring 4096-aligned after the available ring and its used_event.</summary>
    public static ulong LegacyAvail(ulong desc, int size) => desc + DescTableSize(size);

    /// <inheritdoc cref="LegacyAvail"/>
    public static ulong LegacyUsed(ulong desc, int size) => (LegacyAvail(desc, size) + AvailSize(size, eventIdx: true) + 4095) & ~4095UL;

    /// <summary>vring_need_event (include/standard-headers/linux/virtio_ring.h).</summary>
    public static bool NeedEvent(ushort eventIdx, ushort newIdx, ushort oldIdx) =>
        (ushort)(newIdx - eventIdx - 1) < (ushort)(newIdx - oldIdx);
}
