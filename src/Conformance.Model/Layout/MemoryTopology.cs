namespace Conformance.Model;

/// <summary>
/// Instantiates a <see cref="LayoutSpec"/>: regions with their owners, RAMBlocks (page-aligned ram_addr
/// offsets allocated in declaration order), devices and address spaces.
/// </summary>
public sealed class MemoryTopology
{
    private readonly Dictionary<RegionSpec, MemoryRegion> _bySpec = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, List<RegionSpec>> _specsByName = new();
    private readonly Dictionary<string, Owner> _owners = new();
    private readonly List<MemoryRegion> _regions = new();
    private readonly HashSet<RegionSpec> _building = new(ReferenceEqualityComparer.Instance);
    private ulong _nextRamAddr;

    private readonly LayoutSpec _spec;

    public MemoryTopology(LayoutSpec spec, bool ignorePriority = false)
    {
        _spec = spec;
        foreach (var r in spec.AllRegions())
        {
            if (!_specsByName.TryGetValue(r.Name, out var list)) _specsByName[r.Name] = list = new();
            list.Add(r);
        }
        for (int i = 0; i < spec.Regions.Count; i++)
        {
            var root = Build(spec.Regions[i], $"$.layout.regions[{i}]");
            root.SetRootPlacement(spec.Regions[i].Addr, spec.Regions[i].Priority);
        }
        var spaces = new List<AddressSpace>();
        for (int i = 0; i < spec.AddressSpaces.Count; i++)
        {
            var a = spec.AddressSpaces[i];
            var root = a.RootIndex is int index && index >= 0 && index < spec.Regions.Count
                ? _bySpec[spec.Regions[index]]
                : ResolveRootOrByName(a.Root, $"$.layout.addressSpaces[{i}].root");
            if (spaces.Any(s => s.Name == a.Name))
                throw new LayoutError($"$.layout.addressSpaces[{i}].name", $"address space '{a.Name}' is declared twice");
            spaces.Add(new AddressSpace(a.Name, root, a.MaxBounceBufferSize, ignorePriority));
        }
        AddressSpaces = spaces;
        Dirty = spec.Dirty;
    }

    public IReadOnlyList<AddressSpace> AddressSpaces { get; }
    public IReadOnlyList<MemoryRegion> Regions => _regions;
    public IReadOnlyCollection<Owner> Owners => _owners.Values;
    public DirtyLogging Dirty { get; }

    /// <summary>Names are not unique in real machines ("memory" is both cpu-smm's root and an alias in it),
    /// so a parentless region of that name wins over a nested one.</summary>
    private MemoryRegion ResolveRootOrByName(string name, string path)
    {
        var roots = _spec.Regions.Where(r => r.Name == name).ToList();
        if (roots.Count == 1) return _bySpec.TryGetValue(roots[0], out var mr) ? mr : Build(roots[0], path);
        return ResolveByName(name, path);
    }

    private MemoryRegion ResolveByName(string name, string path)
    {
        if (!_specsByName.TryGetValue(name, out var specs))
            throw new LayoutError(path, $"no region named '{name}'");
        if (specs.Count > 1)
            throw new LayoutError(path, $"region name '{name}' is ambiguous ({specs.Count} regions carry it)");
        return _bySpec.TryGetValue(specs[0], out var mr) ? mr : Build(specs[0], path);
    }

    private MemoryRegion ResolveOccurrence(string name, int occurrence, string path)
    {
        if (!_specsByName.TryGetValue(name, out var specs) || occurrence >= specs.Count)
            throw new LayoutError(path, $"there is no region #{occurrence} named '{name}'");
        return _bySpec.TryGetValue(specs[occurrence], out var mr) ? mr : Build(specs[occurrence], path);
    }

    private MemoryRegion Build(RegionSpec s, string path)
    {
        if (_bySpec.TryGetValue(s, out var existing)) return existing;
        if (!_building.Add(s)) throw new LayoutError(path, $"alias cycle through '{s.Name}'");
        if (s.Size == 0) throw new LayoutError(path + ".size", "a region cannot be empty");
        if (s.Size > ((UInt128)1 << 64)) throw new LayoutError(path + ".size", "a region cannot exceed 2^64 bytes");

        MemoryRegion? target = null;
        if (s.Kind == RegionKind.Alias)
        {
            if (s.AliasTarget is null) throw new LayoutError(path + ".target", "an alias needs a target");
            target = s.AliasTargetOccurrence is int occurrence
                ? ResolveOccurrence(s.AliasTarget, occurrence, path + ".targetIndex")
                : ResolveRootOrByName(s.AliasTarget, path + ".target");
        }
        else if (s.AliasTarget is not null)
            throw new LayoutError(path + ".target", "only aliases have a target");

        if (s.Subregions.Count > 0 && s.Kind is not (RegionKind.Container or RegionKind.Io))
            throw new LayoutError(path + ".subregions", $"a {s.Kind} region cannot have subregions in this model");

        Owner? owner = null;
        RamBlock? block = null;
        MmioDevice? device = null;
        uint seed = s.Seed ?? StableHash(s.Name);
        if (s.Kind is not (RegionKind.Container or RegionKind.Alias))
        {
            string ownerName = s.Owner ?? s.Name;
            if (!_owners.TryGetValue(ownerName, out owner)) _owners[ownerName] = owner = new Owner(ownerName);
        }
        if (s.Kind is RegionKind.Ram or RegionKind.Rom or RegionKind.RomDevice or RegionKind.RamDevice)
        {
            if (s.Size > ((UInt128)1 << 48)) throw new LayoutError(path + ".size", "RAM larger than 2^48 bytes is not modelled");
            block = new RamBlock(s.Name, s.Size, _nextRamAddr, seed);
            _nextRamAddr += (ulong)((s.Size + ProfileFacts.TargetPageSize - 1) / ProfileFacts.TargetPageSize * ProfileFacts.TargetPageSize);
        }
        device = s.Kind switch
        {
            RegionKind.Io => new MmioDevice(new ByteStore(s.Size, seed), s.Access ?? AccessRules.Default),
            RegionKind.RomDevice => new MmioDevice(block!.Bytes, s.Access ?? AccessRules.Default, writesStore: false),
            RegionKind.RamDevice => new MmioDevice(block!.Bytes, s.Access ?? AccessRules.RamDevice),
            _ => null,
        };

        var mr = new MemoryRegion(s.Name, s.Kind, s.Size)
        {
            Enabled = s.Enabled,
            Readonly = s.Readonly,
            RomdMode = s.RomdMode,
            LogVga = s.LogVga,
            Nonvolatile = s.Nonvolatile,
            TerminatesExplicitly = s.Terminates,
            AliasTarget = target,
            AliasOffset = s.AliasOffset,
            Owner = owner,
            RamBlock = block,
            Device = device,
        };
        _bySpec[s] = mr;
        _regions.Add(mr);
        for (int i = 0; i < s.Subregions.Count; i++)
        {
            var child = Build(s.Subregions[i], $"{path}.subregions[{i}]");
            mr.AddSubregion(child, s.Subregions[i].Addr, s.Subregions[i].Priority);
        }
        _building.Remove(s);
        return mr;
    }

    /// <summary>FNV-1a, so seeds do not depend on the runtime's randomised string hashing.</summary>
    public static uint StableHash(string s)
    {
        uint h = 2166136261;
        foreach (char c in s) h = (h ^ c) * 16777619;
        return h;
    }
}
