namespace Conformance.Model;

/// <summary>
/// Deliberate bugs that can be switched on in a model instance. Each re-enacts a realistic mistake in
/// map/unmap code so that the property meant to catch it can be shown to fail (a property that cannot
/// fail proves nothing). The reference model runs with <see cref="None"/>.
/// </summary>
[Flags]
public enum Fault
{
    None = 0,
    /// <summary>Unmap forgets memory_region_unref on direct mappings (leaks the owner, blocks hot-unplug).</summary>
    SkipUnref = 1 << 0,
    /// <summary>A bounce write mapping writes its buffer back at map time instead of at unmap.</summary>
    WriteBackAtMap = 1 << 1,
    /// <summary>A bounce read mapping is not filled at map time, but read again at unmap.</summary>
    ReadAtUnmap = 1 << 2,
    /// <summary>Unmap of a read mapping marks the pages dirty too.</summary>
    DirtyOnRead = 1 << 3,
    /// <summary>Direct mappings of RAM are not clamped at the end of the section.</summary>
    NoSectionClamp = 1 << 4,
    /// <summary>Unmap of a bounce mapping forgets to release bounce space.</summary>
    LeakBounceSpace = 1 << 5,
    /// <summary>Unregistering a map client does not remove it, so it is still woken afterwards.</summary>
    UnregisterIgnored = 1 << 6,
    /// <summary>One-at-a-time writes to RAM (address_space_write) forget invalidate_and_set_dirty.</summary>
    WriteSkipsDirty = 1 << 7,
    /// <summary>Unmap writes back the whole bounce buffer instead of access_len bytes.</summary>
    WriteBackWholeBuffer = 1 << 8,
    /// <summary>FlatView rendering ignores subregion priority (uses insertion order).</summary>
    IgnorePriority = 1 << 9,

    // Concurrency bugs: they only show when two threads interleave at the wrong moment.

    /// <summary>The bounce claim reads in_use (Qemu72) or bounce_buffer_size (Qemu92) and then stores it,
    /// instead of qatomic_xchg / qatomic_cmpxchg: two threads can both take the space.</summary>
    NonAtomicBounceClaim = 1 << 10,
    /// <summary>A bounce unmap notifies the map clients before it releases the space, so a client woken
    /// in between retries, fails, registers again, and nobody wakes it once the space is free.</summary>
    NotifyBeforeRelease = 1 << 11,
    /// <summary>The map-client list is used without map_client_list_lock: concurrent registrations
    /// overwrite each other and a waiting client disappears.</summary>
    UnlockedClientList = 1 << 12,
    /// <summary>Qemu92: a bounce unmap subtracts its length from bounce_buffer_size twice; the counter
    /// underflows and later maps are granted more than the budget.</summary>
    DoubleBudgetRelease = 1 << 13,
    /// <summary>memory_region_ref/unref update the owner's count with a plain read and store instead of an
    /// atomic increment, so concurrent maps lose references.</summary>
    NonAtomicRef = 1 << 14,
}
