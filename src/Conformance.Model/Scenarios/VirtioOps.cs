namespace Conformance.Model.Scenarios;

/// <summary>Set up a virtio-blk device (queue 0) whose DMA address space is <see cref="Space"/>, with a disk of
/// <see cref="DiskSectors"/> 512-byte sectors; the driver lays the rings out at the given addresses.</summary>
public sealed record VirtioSetupOp(string Space, int QueueSize, ulong Desc, ulong Avail, ulong Used,
    bool EventIdx, bool Indirect, bool Version1, int DiskSectors, string Serial) : ScenarioOp;

/// <summary>One descriptor the driver writes into a table (the ring's, or an indirect table at <see cref="DescriptorsOp.Table"/>).</summary>
public sealed record DescriptorEntry(int Index, ulong Addr, uint Len, ushort Flags, ushort Next);

/// <summary>The driver writes descriptors into the descriptor ring, or into an indirect table at <see cref="Table"/>.</summary>
public sealed record DescriptorsOp(ulong? Table, IReadOnlyList<DescriptorEntry> Entries) : ScenarioOp;

/// <summary>The driver adds heads to the available ring and publishes the new index.</summary>
public sealed record PublishOp(IReadOnlyList<ushort> Heads) : ScenarioOp;

/// <summary>The driver writes avail->idx directly.</summary>
public sealed record AvailIdxOp(ushort Idx) : ScenarioOp;

/// <summary>The driver sets avail->flags (VRING_AVAIL_F_NO_INTERRUPT) and, with EVENT_IDX, used_event.</summary>
public sealed record InterruptSuppressionOp(ushort Flags, ushort UsedEvent) : ScenarioOp;

/// <summary>The driver kicks queue 0: virtio-blk pops and handles every available request.</summary>
public sealed record KickOp : ScenarioOp;

/// <summary>The block layer completes every request submitted so far.</summary>
public sealed record CompleteIoOp : ScenarioOp;

/// <summary>A generic device pops one element from queue 0 and names it.</summary>
public sealed record PopOp(string Element) : ScenarioOp;

/// <summary>The generic device releases an element: push (fill + flush), detach, or unpop, with the written length.</summary>
public sealed record ReleaseOp(string Element, string How, uint Len) : ScenarioOp;

/// <summary>The device is reset (virtio_reset).</summary>
public sealed record VirtioResetOp : ScenarioOp;

/// <summary>
/// A generic virtio device serves queue 0 on its own rings in <see cref="Space"/>: before any thread starts,
/// the driver writes <see cref="Entries"/> into the descriptor table at <see cref="Desc"/> and publishes
/// <see cref="Heads"/>; on its thread the device then pops every available element and pushes each with the
/// length of its device-writable buffers. Only in <see cref="Scenario.Threads"/> (the devices of a
/// concurrency case run side by side).
/// </summary>
public sealed record ServeQueueOp(string Space, int QueueSize, ulong Desc, ulong Avail, ulong Used,
    IReadOnlyList<DescriptorEntry> Entries, IReadOnlyList<ushort> Heads) : ScenarioOp;
