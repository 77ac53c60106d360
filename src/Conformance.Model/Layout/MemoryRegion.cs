namespace Conformance.Model;

/// <summary>
/// A node of the memory-region tree (include/exec/memory.h: struct MemoryRegion), reduced to what
/// rendering and DMA depend on.
/// </summary>
public sealed class MemoryRegion
{
    private readonly List<MemoryRegion> _subregions = new();

    public MemoryRegion(string name, RegionKind kind, UInt128 size)
    {
        Name = name;
        Kind = kind;
        Size = size;
    }

    public string Name { get; }
    public RegionKind Kind { get; }

    /// <summary>Size in bytes; 2^64 for a region spanning the whole address space.</summary>
    public UInt128 Size { get; }

    /// <summary>Address inside the parent (mr->addr).</summary>
    public ulong Addr { get; private set; }

    public int Priority { get; private set; }
    public bool Enabled { get; set; } = true;

    /// <summary>mr->readonly: set on ROMs and on read-only aliases (e.g. PAM "pam-rom").</summary>
    public bool Readonly { get; init; }

    /// <summary>mr->romd_mode of a ROM device.</summary>
    public bool RomdMode { get; set; } = true;

    /// <summary>mr->dirty_log_mask has DIRTY_MEMORY_VGA (memory_region_set_log).</summary>
    public bool LogVga { get; init; }

    /// <summary>mr->nonvolatile (printed as "nv-").</summary>
    public bool Nonvolatile { get; init; }

    /// <summary>An i/o region that has subregions but still terminates (e.g. QEMU's "io" root, "rtc").</summary>
    public bool TerminatesExplicitly { get; init; }

    public MemoryRegion? Parent { get; private set; }
    public MemoryRegion? AliasTarget { get; init; }
    public ulong AliasOffset { get; init; }
    public Owner? Owner { get; init; }
    public RamBlock? RamBlock { get; init; }
    public MmioDevice? Device { get; init; }

    /// <summary>Subregions in QEMU's list order: higher priority first, and among equal priorities the
    /// most recently added first (softmmu/memory.c:memory_region_update_container_subregions).</summary>
    public IReadOnlyList<MemoryRegion> Subregions => _subregions;

    /// <summary>Order in which the subregion was added to its parent (for equal-priority tie-breaks in oracles).</summary>
    public int InsertionIndex { get; private set; }

    /// <summary>mr->terminates: everything but containers and aliases (an alias is resolved, never terminal).</summary>
    public bool Terminates => Kind switch
    {
        RegionKind.Container => false,
        RegionKind.Alias => false,
        RegionKind.Io => true,
        _ => true,
    } || TerminatesExplicitly;

    /// <summary>memory_region_is_ram: mr->ram.</summary>
    public bool IsRam => Kind is RegionKind.Ram or RegionKind.Rom or RegionKind.RamDevice;

    /// <summary>memory_region_is_romd: a ROM device in romd mode.</summary>
    public bool IsRomd => Kind == RegionKind.RomDevice && RomdMode;

    /// <summary>
    /// include/exec/memory.h:memory_access_is_direct (7.2; identical to master for ordinary DMA attrs;
    /// docs/qemu-rules.md, DIRECT-1):
    /// writes are direct only to plain writable RAM, reads to RAM, ROM and ROM devices in romd mode.
    /// The read-only flag of an alias path is not consulted (docs/qemu-rules.md, M8).
    /// </summary>
    public bool IsDirect(bool isWrite) => isWrite
        ? Kind == RegionKind.Ram && !Readonly
        : Kind is RegionKind.Ram or RegionKind.Rom || IsRomd;

    /// <summary>The type word `info mtree` of QEMU 7.2 to 10.x prints (softmmu/memory.c:memory_region_type).</summary>
    public string TypeName => TypeWord(MtreeDialect.IoOnly);

    /// <summary>The type word `info mtree` prints (memory.c:memory_region_type): from QEMU 11 a region that is
    /// not RAM-like and has no parent region prints `container`, whether or not it has ops.</summary>
    public string TypeWord(MtreeDialect dialect) => Kind switch
    {
        RegionKind.Alias => AliasTarget!.TypeWord(dialect),
        RegionKind.RamDevice => "ramd",
        RegionKind.RomDevice when RomdMode => "romd",
        RegionKind.Rom => "rom",
        RegionKind.Ram => Readonly ? "rom" : "ram",
        _ => dialect == MtreeDialect.ParentlessContainers && Parent is null ? "container" : "i/o",
    };

    private int _insertions;

    /// <summary>memory_region_add_subregion_overlap: insert before the first sibling whose priority is
    /// lower or equal, so a later region of the same priority wins.</summary>
    public void AddSubregion(MemoryRegion child, ulong addr, int priority)
    {
        if (child.Parent is not null) throw new InvalidOperationException($"region '{child.Name}' already has a parent");
        child.Parent = this;
        child.Addr = addr;
        child.Priority = priority;
        child.InsertionIndex = _insertions++;
        int at = _subregions.FindIndex(other => child.Priority >= other.Priority);
        if (at < 0) _subregions.Add(child); else _subregions.Insert(at, child);
    }

    /// <summary>Sets the priority of a region that has no parent (roots print their own priority).</summary>
    public void SetRootPlacement(ulong addr, int priority)
    {
        if (Parent is not null) throw new InvalidOperationException("only for parentless regions");
        Addr = addr;
        Priority = priority;
    }

    public override string ToString() => Name;

    /// <summary>io_mem_unassigned: what holes resolve to. No owner, reads as zero, writes are dropped.</summary>
    public static readonly MemoryRegion Unassigned = new("unassigned", RegionKind.Io, (UInt128)1 << 64);
}
