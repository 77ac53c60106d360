using System.Buffers.Binary;

namespace Conformance.Model;

/// <summary>
/// The reference model of QEMU's guest-memory DMA API for one machine: address_space_map/unmap, the
/// one-at-a-time accessors address_space_read/write, bounce buffers, map clients, owner references and
/// dirty tracking (softmmu/physmem.c in 7.2; system/physmem.c in master). Deterministic, no I/O.
/// </summary>
public sealed class MemorySystem
{
    private readonly MemoryTopology _topology;
    private readonly List<Mapping> _live = new();
    private readonly List<string> _pendingBottomHalves = new();
    private readonly MapClientList _globalClients = new();
    private readonly List<DeviceAccess> _journal = new();
    private int _nextMappingId = 1;

    /// <summary>Qemu72: the one process-global bounce buffer (bounce.in_use).</summary>
    private Mapping? _globalBounce;
    private bool _globalBounceInUse;

    public MemorySystem(LayoutSpec layout, Profile profile, Fault faults = Fault.None)
    {
        Profile = profile;
        Faults = faults;
        _topology = new MemoryTopology(layout, faults.HasFlag(Fault.IgnorePriority));
    }

    public Profile Profile { get; }
    public Fault Faults { get; }
    public IReadOnlyList<AddressSpace> AddressSpaces => _topology.AddressSpaces;
    public IReadOnlyList<MemoryRegion> Regions => _topology.Regions;
    public IReadOnlyCollection<Owner> Owners => _topology.Owners;
    public DirtyMemory Dirty { get; } = new();
    public IReadOnlyList<Mapping> LiveMappings => _live;

    /// <summary>Bytes that reached memory or a device from a bounce buffer although nobody produced them
    /// (Qemu72: uninitialised heap; Qemu92: zero fill), over the whole run, whoever unmapped.</summary>
    public long UnproducedBytesWrittenBack { get; private set; }

    /// <summary>Every device callback in the order it happened, across all devices.</summary>
    public IReadOnlyList<DeviceAccess> AccessJournal => _journal;

    public AddressSpace Space(string name) =>
        AddressSpaces.FirstOrDefault(a => a.Name == name) ?? throw new ArgumentException($"no address space '{name}'");

    public MemoryRegion Region(string name) =>
        Regions.Single(r => r.Name == name);

    /// <summary>Bounce bytes handed out and not yet released: Qemu72 system-wide, Qemu92 for <paramref name="space"/>.</summary>
    public ulong BounceBytesInUse(AddressSpace space) => Profile == Profile.Qemu72
        ? (_globalBounceInUse ? _globalBounce?.Length ?? 0 : 0)
        : space.BounceBufferSize;

    /// <summary>Qemu72 only: whether the global buffer is taken (bounce.in_use).</summary>
    public bool GlobalBounceInUse => _globalBounceInUse;

    private bool Has(Fault f) => (Faults & f) != 0;

    // ------------------------------------------------------------------ map

    /// <summary>address_space_map(as, addr, &amp;len, is_write, MEMTXATTRS_UNSPECIFIED).</summary>
    public MapResult Map(AddressSpace space, ulong addr, ulong len, bool isWrite)
    {
        if (len == 0) return new MapResult(null, 0, MapFailure.ZeroLength);   // M1

        var view = space.View;
        var section = view.Translate(addr);
        ulong l = ClampToRamSection(section, len);
        var mr = section.Region;

        if (!mr.IsDirect(isWrite)) return MapBounce(space, view, addr, l, isWrite, mr);

        Ref(mr);
        ulong done = DirectLength(view, addr, len, section, l);
        var mapping = new Mapping(_nextMappingId++, space, addr, done, isWrite, MappingKind.Direct, mr, section.Xlat, null);
        _live.Add(mapping);
        return new MapResult(mapping, done, MapFailure.None);
    }

    /// <summary>address_space_translate_internal clamps only RAM (M4); MMIO callers clamp themselves.</summary>
    private ulong ClampToRamSection(Section section, ulong len) =>
        section.Region.IsRam && !Has(Fault.NoSectionClamp) ? (ulong)UInt128.Min(len, section.RemainingInRange) : len;

    /// <summary>The direct path's length: extend over host-contiguous pieces of the same region
    /// (flatview_extend_translation), then clamp to the RAMBlock (qemu_ram_ptr_length).</summary>
    private ulong DirectLength(FlatView view, ulong addr, ulong len, Section section, ulong firstPiece)
    {
        ulong done = ExtendTranslation(view, addr, len, section.Region, section.Xlat, firstPiece);
        return (ulong)UInt128.Min(done, section.Region.RamBlock!.MaxLength - section.Xlat);
    }

    /// <summary>softmmu/physmem.c:flatview_extend_translation.</summary>
    private ulong ExtendTranslation(FlatView view, ulong addr, ulong targetLen, MemoryRegion mr, ulong @base, ulong len)
    {
        ulong done = 0;
        for (;;)
        {
            targetLen -= len;
            addr += len;
            done += len;
            if (targetLen == 0) return done;
            var next = view.Translate(addr);
            len = ClampToRamSection(next, targetLen);
            if (!ReferenceEquals(next.Region, mr) || next.Xlat != @base + done) return done;
        }
    }

    private MapResult MapBounce(AddressSpace space, FlatView view, ulong addr, ulong l, bool isWrite, MemoryRegion mr)
    {
        if (Profile == Profile.Qemu72)
        {
            // B72-1: qatomic_xchg(&bounce.in_use, true)
            if (_globalBounceInUse) return new MapResult(null, 0, MapFailure.NoBounceSpace);
            _globalBounceInUse = true;
            l = Math.Min(l, ProfileFacts.TargetPageSize);   // B72-2
        }
        else
        {
            // BM-1/BM-2: reserve min(request, remaining budget) of this address space
            ulong alloc = Math.Min(space.MaxBounceBufferSize - space.BounceBufferSize, l);
            if (alloc == 0) return new MapResult(null, 0, MapFailure.NoBounceSpace);
            space.BounceBufferSize += alloc;
            l = alloc;
        }

        var buffer = new BounceBuffer(checked((int)l), zeroFilled: Profile == Profile.Qemu92);
        Ref(mr);   // first region only, even if the buffer spans several
        var mapping = new Mapping(_nextMappingId++, space, addr, l, isWrite, MappingKind.Bounce, mr, 0, buffer);
        if (Profile == Profile.Qemu72) _globalBounce = mapping;
        if (!isWrite && !Has(Fault.ReadAtUnmap)) FillFromDevice(view, mapping);   // B72-4 / BM-4
        if (isWrite && Has(Fault.WriteBackAtMap)) Write(space, addr, buffer.Data);
        _live.Add(mapping);
        return new MapResult(mapping, l, MapFailure.None);
    }

    private void FillFromDevice(FlatView view, Mapping mapping)
    {
        ReadView(view, mapping.Addr, mapping.Bounce!.Data);
        Array.Fill(mapping.Bounce.Produced, ByteOrigin.Device);
    }

    // ------------------------------------------------------------------ region caches

    /// <summary>
    /// softmmu/physmem.c:address_space_cache_init: references the region at <paramref name="addr"/> and
    /// returns how many bytes the cache covers — for direct memory the host-contiguous run (clamped to the
    /// RAMBlock), otherwise the whole request (the slow path dispatches each access).
    /// </summary>
    public RegionCache OpenCache(AddressSpace space, ulong addr, ulong len, bool isWrite)
    {
        var view = space.View;
        var section = view.Translate(addr);
        ulong l = ClampToRamSection(section, len);
        var mr = section.Region;
        Ref(mr);
        if (mr.IsDirect(isWrite) && len > 0) l = DirectLength(view, addr, len, section, l);
        return new RegionCache(mr, l);
    }

    /// <summary>address_space_cache_destroy: drops the cache's reference.</summary>
    public void CloseCache(RegionCache cache) => Unref(cache.Region);

    // ------------------------------------------------------------------ use of a mapping

    /// <summary>The caller writes through the host pointer of a mapping.</summary>
    public void WriteMapped(Mapping m, ulong offset, ReadOnlySpan<byte> data)
    {
        CheckWindow(m, offset, (ulong)data.Length);
        if (m.Kind == MappingKind.Direct)
        {
            m.Region.RamBlock!.Bytes.Write(m.Xlat + offset, data);   // no dirty marking until unmap
            return;
        }
        data.CopyTo(m.Bounce!.Data.AsSpan((int)offset));
        Array.Fill(m.Bounce.Produced, ByteOrigin.Caller, (int)offset, data.Length);
    }

    /// <summary>The caller reads through the host pointer of a mapping.</summary>
    public void ReadMapped(Mapping m, ulong offset, Span<byte> destination)
    {
        CheckWindow(m, offset, (ulong)destination.Length);
        if (m.Kind == MappingKind.Direct) m.Region.RamBlock!.Bytes.Read(m.Xlat + offset, destination);
        else m.Bounce!.Data.AsSpan((int)offset, destination.Length).CopyTo(destination);
    }

    private static void CheckWindow(Mapping m, ulong offset, ulong length)
    {
        if (!m.Live) throw new InvalidOperationException($"mapping {m} is no longer live");
        if (offset > m.Length || length > m.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{length}) is outside mapping {m}");
    }

    // ------------------------------------------------------------------ unmap

    /// <summary>
    /// address_space_unmap(as, buffer, len, is_write, access_len) with the mapping's own address space.
    /// <paramref name="accessLen"/> above the mapped length is caller misuse (semantics.md §3 U1) and rejected.
    /// </summary>
    public UnmapResult Unmap(Mapping m, ulong accessLen)
    {
        if (!m.Live) return UnmapResult.NotLive;
        if (accessLen > m.Length)
            throw new ArgumentOutOfRangeException(nameof(accessLen), $"access_len {accessLen} exceeds mapped length {m.Length}");
        m.Live = false;
        _live.Remove(m);

        if (m.Kind == MappingKind.Direct)
        {
            // U3: dirty exactly access_len bytes from the mapping start, writes only.
            if (m.IsWrite) SetDirty(m.Region, m.Xlat, accessLen);
            else if (Has(Fault.DirtyOnRead)) SetDirty(m.Region, m.Xlat, m.Length);
            if (!Has(Fault.SkipUnref)) Unref(m.Region);
            return new UnmapResult(true, 0, 0, 0, Array.Empty<string>());
        }

        var buffer = m.Bounce!;
        ulong written = 0;
        int never = 0, zero = 0;
        if (m.IsWrite && !Has(Fault.WriteBackAtMap))
        {
            // U72-1 / UM-1: a fresh translation of the original address, exactly access_len bytes.
            written = Has(Fault.WriteBackWholeBuffer) ? m.Length : accessLen;
            for (int i = 0; i < (int)written; i++)
            {
                if (buffer.Produced[i] == ByteOrigin.NeverProduced) never++;
                else if (buffer.Produced[i] == ByteOrigin.ZeroFill) zero++;
            }
            Write(m.AddressSpace, m.Addr, buffer.Data.AsSpan(0, (int)written));
            UnproducedBytesWrittenBack += never + zero;
        }
        if (!m.IsWrite && Has(Fault.ReadAtUnmap)) FillFromDevice(m.AddressSpace.View, m);

        Unref(m.Region);
        IReadOnlyList<string> scheduled = Array.Empty<string>();
        if (!Has(Fault.LeakBounceSpace))
        {
            if (Profile == Profile.Qemu72)
            {
                _globalBounce = null;
                _globalBounceInUse = false;   // U72-3
            }
            else
            {
                m.AddressSpace.BounceBufferSize -= m.Length;   // UM-2
            }
        }
        // U72-3 / UM-4: every bounce unmap notifies all waiting clients.
        scheduled = Schedule(ClientsFor(m.AddressSpace).TakeAll());
        return new UnmapResult(true, written, never, zero, scheduled);
    }

    // ------------------------------------------------------------------ map clients

    private MapClientList ClientsFor(AddressSpace space) => Profile == Profile.Qemu72 ? _globalClients : space.MapClients;

    private bool HasBounceCapacity(AddressSpace space) => Profile == Profile.Qemu72
        ? !_globalBounceInUse
        : space.BounceBufferSize < space.MaxBounceBufferSize;

    /// <summary>cpu_register_map_client (Qemu72, one global list) / address_space_register_map_client (Qemu92, per AS).
    /// If capacity exists right now every waiting client is scheduled at once (C2). Returns what was scheduled.</summary>
    public IReadOnlyList<string> RegisterMapClient(AddressSpace space, string client)
    {
        var list = ClientsFor(space);
        list.Register(client);
        return HasBounceCapacity(space) ? Schedule(list.TakeAll()) : Array.Empty<string>();
    }

    /// <summary>cpu_unregister_map_client: removes the record if it has not fired yet.</summary>
    public bool UnregisterMapClient(AddressSpace space, string client) =>
        !Has(Fault.UnregisterIgnored) && ClientsFor(space).Unregister(client);

    public IReadOnlyList<string> RegisteredMapClients(AddressSpace space) => ClientsFor(space).Registered;

    /// <summary>Bottom halves scheduled and not yet run.</summary>
    public IReadOnlyList<string> PendingBottomHalves => _pendingBottomHalves;

    private IReadOnlyList<string> Schedule(List<string> clients)
    {
        foreach (var c in clients)
            if (!_pendingBottomHalves.Contains(c)) _pendingBottomHalves.Add(c);   // qemu_bh_schedule is idempotent
        return clients;
    }

    /// <summary>The main loop runs the scheduled bottom halves (C1: callbacks are never synchronous).</summary>
    public IReadOnlyList<string> RunBottomHalves()
    {
        var ran = new List<string>(_pendingBottomHalves);
        _pendingBottomHalves.Clear();
        return ran;
    }

    // ------------------------------------------------------------------ one-at-a-time access

    /// <summary>address_space_read → flatview_read_continue.</summary>
    public void Read(AddressSpace space, ulong addr, Span<byte> destination) => ReadView(space.View, addr, destination);

    /// <summary>address_space_write → flatview_write_continue.</summary>
    public void Write(AddressSpace space, ulong addr, ReadOnlySpan<byte> source)
    {
        var view = space.View;
        int pos = 0;
        while (pos < source.Length)
        {
            var section = view.Translate(addr);
            var mr = section.Region;
            ulong l = ClampToRamSection(section, (ulong)(source.Length - pos));
            if (!mr.IsDirect(true))
            {
                l = MemoryAccessSize(mr, l, section.Xlat);
                ulong value = 0;
                for (int i = (int)l - 1; i >= 0; i--) value = (value << 8) | source[pos + i];   // ldn_he_p, little-endian host
                DispatchWrite(mr, section.Xlat, (uint)l, value);
            }
            else
            {
                l = (ulong)UInt128.Min(l, mr.RamBlock!.MaxLength - section.Xlat);
                mr.RamBlock.Bytes.Write(section.Xlat, source.Slice(pos, (int)l));
                if (!Has(Fault.WriteSkipsDirty)) SetDirty(mr, section.Xlat, l);
            }
            pos += (int)l;
            addr += l;
        }
    }

    /// <summary>address_space_lduw_le: a little-endian 16-bit load (virtio rings are little-endian).</summary>
    public ushort LoadU16Le(AddressSpace space, ulong addr)
    {
        Span<byte> b = stackalloc byte[2];
        Read(space, addr, b);
        return BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    /// <summary>address_space_stw_le: a little-endian 16-bit store.</summary>
    public void StoreU16Le(AddressSpace space, ulong addr, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Write(space, addr, b);
    }

    private void ReadView(FlatView view, ulong addr, Span<byte> destination)
    {
        int pos = 0;
        while (pos < destination.Length)
        {
            var section = view.Translate(addr);
            var mr = section.Region;
            ulong l = ClampToRamSection(section, (ulong)(destination.Length - pos));
            if (!mr.IsDirect(false))
            {
                l = MemoryAccessSize(mr, l, section.Xlat);
                ulong value = DispatchRead(mr, section.Xlat, (uint)l);
                for (int i = 0; i < (int)l; i++) destination[pos + i] = (byte)(value >> (8 * i));   // stn_he_p
            }
            else
            {
                l = (ulong)UInt128.Min(l, mr.RamBlock!.MaxLength - section.Xlat);
                mr.RamBlock.Bytes.Read(section.Xlat, destination.Slice(pos, (int)l));
            }
            pos += (int)l;
            addr += l;
        }
    }

    private static AccessRules RulesOf(MemoryRegion mr) => mr.Device?.Rules ?? AccessRules.Default;

    /// <summary>softmmu/physmem.c:memory_access_size.</summary>
    internal static ulong MemoryAccessSize(MemoryRegion mr, ulong l, ulong addr)
    {
        var rules = RulesOf(mr);
        ulong max = rules.EffectiveValidMax;
        if (!rules.ImplUnaligned)
        {
            ulong align = addr & (~addr + 1);
            if (align != 0 && align < max) max = align;
        }
        if (l > max) l = max;
        return l == 0 ? 0 : 1UL << (63 - System.Numerics.BitOperations.LeadingZeroCount(l));   // pow2floor
    }

    /// <summary>
    /// softmmu/memory.c:memory_region_access_valid. Regions without device ops (unassigned, ROM and RAM
    /// written through dispatch) use unassigned_mem_ops, whose accepts() refuses everything.
    /// </summary>
    private static bool AccessValid(MemoryRegion mr, ulong addr, uint size)
    {
        if (mr.Device is null) return false;
        if (!mr.Device.Rules.ImplUnaligned && (addr & (size - 1)) != 0) return false;
        if (mr.Device.Rules.ValidMaxAccessSize == 0) return true;
        return size <= mr.Device.Rules.ValidMaxAccessSize && size >= 1;
    }

    /// <summary>memory_region_dispatch_read → access_with_adjusted_size; invalid accesses read as 0 (unassigned_mem_read).</summary>
    private ulong DispatchRead(MemoryRegion mr, ulong addr, uint size)
    {
        if (!AccessValid(mr, addr, size)) return 0;
        var rules = mr.Device!.Rules;
        uint accessSize = Math.Max(Math.Min(size, rules.EffectiveImplMax), rules.EffectiveImplMin);
        ulong mask = accessSize >= 8 ? ulong.MaxValue : (1UL << (int)(accessSize * 8)) - 1;
        ulong value = 0;
        for (uint i = 0; i < size; i += accessSize)
        {
            var access = mr.Device.Read(addr + i, accessSize);
            _journal.Add(new DeviceAccess(mr.Name, access));
            value |= (access.Value & mask) << (int)(i * 8);
        }
        return value;
    }

    /// <summary>memory_region_dispatch_write; invalid accesses are dropped (unassigned_mem_write).</summary>
    private void DispatchWrite(MemoryRegion mr, ulong addr, uint size, ulong value)
    {
        if (!AccessValid(mr, addr, size)) return;
        var rules = mr.Device!.Rules;
        uint accessSize = Math.Max(Math.Min(size, rules.EffectiveImplMax), rules.EffectiveImplMin);
        ulong mask = accessSize >= 8 ? ulong.MaxValue : (1UL << (int)(accessSize * 8)) - 1;
        for (uint i = 0; i < size; i += accessSize)
            _journal.Add(new DeviceAccess(mr.Name, mr.Device.Write(addr + i, accessSize, (value >> (int)(i * 8)) & mask)));
    }

    // ------------------------------------------------------------------ references and dirty memory

    private static void Ref(MemoryRegion mr)
    {
        if (mr.Owner is not null) mr.Owner.RefCount++;   // memory_region_ref: owner-less regions are not counted
    }

    private static void Unref(MemoryRegion mr)
    {
        if (mr.Owner is not null) mr.Owner.RefCount--;
    }

    /// <summary>The dirty clients active for a region (memory_region_get_dirty_log_mask).</summary>
    public IReadOnlyList<DirtyClient> ActiveClients(MemoryRegion mr)
    {
        var clients = new List<DirtyClient>(3);
        if (mr.LogVga) clients.Add(DirtyClient.Vga);
        if (_topology.Dirty.Code && mr.RamBlock is not null) clients.Add(DirtyClient.Code);
        if (_topology.Dirty.Migration && mr.RamBlock is not null) clients.Add(DirtyClient.Migration);
        return clients;
    }

    /// <summary>softmmu/physmem.c:invalidate_and_set_dirty(mr, addr, length).</summary>
    private void SetDirty(MemoryRegion mr, ulong offset, ulong length) =>
        Dirty.SetDirty(mr.RamBlock!.RamAddr + offset, length, ActiveClients(mr));

    /// <summary>The RAM block owning a ram_addr page, and the page's index inside it.</summary>
    public (RamBlock Block, ulong Page) LocatePage(ulong ramAddrPage)
    {
        ulong ramAddr = ramAddrPage * ProfileFacts.TargetPageSize;
        foreach (var r in Regions)
            if (r.RamBlock is { } b && ramAddr >= b.RamAddr && ramAddr - b.RamAddr < b.MaxLength)
                return (b, (ramAddr - b.RamAddr) / ProfileFacts.TargetPageSize);
        throw new ArgumentOutOfRangeException(nameof(ramAddrPage));
    }
}
