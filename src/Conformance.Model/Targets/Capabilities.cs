namespace Conformance.Model.Targets;

/// <summary>
/// What a target can do and show. A property declares the capabilities it needs; on a target without one
/// of them the property is not run and is reported as skipped, naming what was missing.
/// </summary>
[Flags]
public enum Capabilities
{
    None = 0,

    /// <summary>Scenario-driven address_space_map/unmap: map, write or read through a mapping, unmap, with
    /// each map's outcome (kind, granted length, failure).</summary>
    DmaMapping = 1 << 0,

    /// <summary>cpu_register_map_client/cpu_unregister_map_client and running the scheduled bottom halves,
    /// with the clients each step scheduled and ran.</summary>
    MapClients = 1 << 1,

    /// <summary>Per-step internals a device model cannot see from outside: owner references, bounce bytes in
    /// use, the device callbacks a step caused, newly dirty pages, bytes written back that nobody produced.</summary>
    MemoryInternals = 1 << 2,

    /// <summary>virtqueue_pop/push/detach/unpop called by the scenario itself, with each popped element's
    /// pieces and the queue's counters after every step.</summary>
    VirtqueueCalls = 1 << 3,

    /// <summary>A virtio-blk device driven as a guest does: rings, descriptors, publish, kick, completion;
    /// used elements, disk contents, device status and error lines.</summary>
    VirtioBlk = 1 << 4,

    /// <summary>The rendered flat view of every address space (what `info mtree -f` prints).</summary>
    FlatViews = 1 << 5,

    /// <summary>Every region's contents and the dirty bitmaps at the end of a run, to compare two runs.</summary>
    MemoryContents = 1 << 6,

    /// <summary>Fresh in-process instances that several threads drive at once (the concurrency properties).</summary>
    InProcessInstances = 1 << 7,

    /// <summary>Plain reads and writes of guest memory (address_space_read/write; qtest's read and write).</summary>
    GuestMemory = 1 << 8,

    /// <summary>The device's writes to the used ring in the order it made them (not only the final ring).</summary>
    RingWriteOrder = 1 << 9,

    /// <summary>Runs a scenario on whatever layout it carries (the model builds any machine). A target without
    /// it has one machine (<see cref="ITarget.Machine"/>), and only properties that can generate their cases
    /// on that machine run on it.</summary>
    AnyLayout = 1 << 10,
}

public static class CapabilityNames
{
    /// <summary>The capabilities in <paramref name="needed"/> that <paramref name="available"/> lacks, by name ("" when none).</summary>
    public static string Missing(Capabilities needed, Capabilities available) =>
        string.Join(", ", Enum.GetValues<Capabilities>().Where(c => c != Capabilities.None && needed.HasFlag(c) && !available.HasFlag(c)));
}
