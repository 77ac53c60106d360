namespace Conformance.Model.Virtio;

/// <summary>Deliberate bugs in the virtqueue layer, each re-enacting a real class of QEMU bug, for showing that
/// the virtqueue properties can fail.</summary>
[Flags]
public enum VirtioFault
{
    None = 0,
    /// <summary>An error in the middle of a chain does not unmap what was already mapped (cf. CVE-2022-26353).</summary>
    NoUndoOnError = 1 << 0,
    /// <summary>Fill spreads the written length over the out buffers instead of the in buffers.</summary>
    LengthToOutBuffers = 1 << 1,
    /// <summary>Flush publishes used.idx before writing the used element.</summary>
    IndexBeforeEntry = 1 << 2,
    /// <summary>The "Looped descriptor" check is off: chains are cut only by a safety cap.</summary>
    NoLoopDetection = 1 << 3,
    /// <summary>Pop does not check inuse against the queue size (CVE-2016-5403).</summary>
    NoInUseCheck = 1 << 4,
    /// <summary>The notification decision ignores VRING_AVAIL_F_NO_INTERRUPT / used_event.</summary>
    AlwaysNotify = 1 << 5,
    /// <summary>Flush forgets to decrement inuse.</summary>
    FlushKeepsInUse = 1 << 6,
    /// <summary>Fill reports one byte more than the device was told it wrote.</summary>
    ReportedLenPlusOne = 1 << 7,
    /// <summary>virtio-blk drains the queue with guest kicks suppressed and forgets to allow them again:
    /// VRING_USED_F_NO_NOTIFY stays set (or avail_event stays behind), so the guest never kicks again and
    /// the queue stalls — a lost-notification hang.</summary>
    KicksLeftSuppressed = 1 << 8,
}
