namespace Conformance.Model;

/// <summary>
/// Which QEMU generation the model behaves like. Only the bounce-buffer design differs (docs/qemu-versions.md,
/// "Bounce buffers"): everything else in map/unmap is identical for ordinary DMA.
/// </summary>
public enum Profile
{
    /// <summary>QEMU up to 9.0 (checked live: Debian's 7.2.22): one process-global bounce buffer of at most
    /// one target page (softmmu/physmem.c: static BounceBuffer bounce; address_space_map). QEMU 9.1's one
    /// buffer per address space is between the two profiles and not modelled.</summary>
    Qemu72,

    /// <summary>QEMU 9.2 and later (checked live: 10.0.13 and 11.1.3): bounce bytes accounted per address space against
    /// max_bounce_buffer_size (default 4096), partial grants, zero-filled buffers
    /// (system/physmem.c:address_space_map, system/memory.c:address_space_init).</summary>
    Qemu92,
}

public static class ProfileFacts
{
    /// <summary>TARGET_PAGE_SIZE on x86_64.</summary>
    public const ulong TargetPageSize = 4096;

    /// <summary>DEFAULT_MAX_BOUNCE_BUFFER_SIZE (system/memory.c:address_space_init).</summary>
    public const ulong DefaultMaxBounceBufferSize = 4096;
}
