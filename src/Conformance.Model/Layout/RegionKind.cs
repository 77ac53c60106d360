namespace Conformance.Model;

/// <summary>
/// The kinds of MemoryRegion that matter to DMA (include/exec/memory.h flags ram, readonly,
/// rom_device, ram_device, terminates, alias).
/// </summary>
public enum RegionKind
{
    /// <summary>Pure container (memory_region_init): does not terminate, falls through to what is below it.</summary>
    Container,
    /// <summary>MMIO / port I/O (memory_region_init_io): terminates, accessed through device ops.</summary>
    Io,
    /// <summary>RAM (ram=1).</summary>
    Ram,
    /// <summary>ROM (ram=1, readonly=1; memory_region_init_rom).</summary>
    Rom,
    /// <summary>ROM device (rom_device=1, ram=0): reads from its RAMBlock while in romd mode, writes go to ops.</summary>
    RomDevice,
    /// <summary>RAM device (ram=1, ram_device=1, e.g. a VFIO BAR): accessed with MMIO semantics.</summary>
    RamDevice,
    /// <summary>Alias of a window of another region.</summary>
    Alias,
}
