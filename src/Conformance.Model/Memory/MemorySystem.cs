using System.Buffers.Binary;

namespace Conformance.Model;

/// <summary>
/// The reference model of QEMU's guest-memory DMA API for one machine: address_space_map/unmap, the
/// one-at-a-time accessors address_space_read/write, bounce buffers, map clients, owner references and
/// dirty tracking (softmmu/physmem.c in 7.2; system/physmem.c in master). Deterministic, no I/O.
/// Rule ids in the comments (M1, B72-1, BM-1, U72-3, UM-4, C2, …) are headings in docs/qemu-rules.md.
/// <para>
/// Map, unmap, map-client registration and notification may be called from many threads, with QEMU's
/// atomicity: the Qemu72 in-use flag is exchanged atomically and the Qemu92 budget reserved with a
/// compare-and-swap loop, the client list is guarded by its mutex, reference counts and dirty bits change
/// atomically, device callbacks run under the BQL one access at a time (prepare_mmio_access), and a
/// notification only schedules a bottom half. What threads read and write through their own mappings is
/// their own business, as in QEMU. With an <see cref="Interleaver"/> installed, every touch of shared state
/// is an interleaving point, so a harness can choose and replay the interleaving.
/// </para>
/// </summary>
public sealed class MemorySystem
{
    private readonly MemoryTopology _topology;
    private readonly LiveMappings _live = new();
    private readonly List<string> _pendingBottomHalves = new();
    private readonly MapClientList _globalClients = new();
    private readonly DeviceAccessList _journal = new();
    // Stryker disable once String : the name only labels the scheduler's waits ("wait for BQL") in a reported schedule; entering the BQL is never an interleaving point and no property judges a label
    private readonly ModelLock _bql = new("BQL", pointOnEnter: false);
    private int _nextMappingId;
    private long _unproducedBytesWrittenBack;

    /// <summary>Qemu72: the one process-global bounce buffer (bounce.in_use, 1 = taken).</summary>
    private Mapping? _globalBounce;
    private int _globalBounceInUse;
    /// <summary>Bounce buffers that exist right now, across the system (allocated after a claim, freed before the release).</summary>
    private int _bounceBuffersAllocated;

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
    /// <summary>The live mappings; read it when no other thread is mapping or unmapping.</summary>
    public IReadOnlyList<Mapping> LiveMappings => _live.Items;

    /// <summary>Chooses interleavings for tests; null (the default) runs free. Set before threads start.</summary>
    public IInterleaver? Interleaver { get; set; }

    /// <summary>Bounce buffers that exist right now across the system: at most one under Qemu72.</summary>
    public int BounceBuffersAllocated => Volatile.Read(ref _bounceBuffersAllocated);

    /// <summary>Guards the bookkeeping of bounce buffers that exist (not QEMU state: QEMU's own counters, the
    /// in-use flag and the byte budget, stay lock-free), so that an observer sees one consistent instant.</summary>
    private readonly object _bounceBook = new();

    /// <summary>The bounce buffers that exist, per address space, at one instant (consistent across address
    /// spaces, while other threads map and unmap).</summary>
    public BounceSnapshot SnapshotBounce()
    {
        lock (_bounceBook)
            return new BounceSnapshot(_bounceBuffersAllocated,
                AddressSpaces.Select(a => new BounceSpaceSnapshot(a, a.Allocated, a.Freeing)).ToList());
    }

    /// <summary>Bytes that reached memory or a device from a bounce buffer although nobody produced them
    /// (Qemu72: uninitialised heap; Qemu92: zero fill), over the whole run, whoever unmapped.</summary>
    public long UnproducedBytesWrittenBack => Interlocked.Read(ref _unproducedBytesWrittenBack);

    /// <summary>Every device callback in the order it happened, across all devices.</summary>
    public IReadOnlyList<DeviceAccess> AccessJournal => _journal;

    /// <summary>The journal's callbacks from <paramref name="from"/> on, as a copy later callbacks do not change.</summary>
    internal DeviceAccessList AccessesSince(int from) => _journal.CopyFrom(from);

    /// <summary>Forgets the journal so far, keeping its storage: a caller that runs one system for millions
    /// of transfers (a benchmark, a soak) would otherwise hold every device callback ever made.</summary>
    public void ClearAccessJournal()
    {
        var il = Interleaver;
        _bql.Enter(il);   // the journal is appended to under the BQL (see DispatchWrite)
        try { _journal.Truncate(0); }
        finally { _bql.Exit(il); }
    }

    /// <summary>Forgets the device callbacks after the first <paramref name="count"/>: those of reads made to
    /// observe the machine, not by any step (the used ring read back for an observation, say).</summary>
    public void TrimAccessJournal(int count)
    {
        var il = Interleaver;
        _bql.Enter(il);
        try { _journal.Truncate(count); }
        finally { _bql.Exit(il); }
    }

    public AddressSpace Space(string name) =>
        AddressSpaces.FirstOrDefault(a => a.Name == name) ?? throw new ArgumentException($"no address space '{name}'");

    public MemoryRegion Region(string name) =>
        Regions.SingleOrDefault(r => r.Name == name) ?? throw new ArgumentException($"no region '{name}'");

    /// <summary>Bounce bytes handed out and not yet released: Qemu72 system-wide, Qemu92 for <paramref name="space"/>.</summary>
    public ulong BounceBytesInUse(AddressSpace space) => Profile == Profile.Qemu72
        // Stryker disable once Conditional : _globalBounce is set after the claim and cleared before the release, so it is null whenever in_use is clear
        ? (GlobalBounceInUse ? _globalBounce?.Length ?? 0 : 0)
        : space.BounceBufferSize;

    /// <summary>Qemu72 only: whether the global buffer is taken (bounce.in_use).</summary>
    public bool GlobalBounceInUse => Volatile.Read(ref _globalBounceInUse) != 0;

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
        var mapping = new Mapping(Interlocked.Increment(ref _nextMappingId), space, addr, done, isWrite, MappingKind.Direct, mr, section.Xlat, null);
        AddLive(mapping);
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
        for (; ; )
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
            if (!ClaimGlobalBounce()) return new MapResult(null, 0, MapFailure.NoBounceSpace);
            l = Math.Min(l, ProfileFacts.TargetPageSize);   // B72-2
        }
        else
        {
            l = ReserveBudget(space, l);
            if (l == 0) return new MapResult(null, 0, MapFailure.NoBounceSpace);   // BM-2
        }

        var buffer = new BounceBuffer(checked((int)l), zeroFilled: Profile == Profile.Qemu92);
        lock (_bounceBook)
        {
            _bounceBuffersAllocated++;
            space.Allocated += (long)l;
        }
        Ref(mr);   // first region only, even if the buffer spans several
        var mapping = new Mapping(Interlocked.Increment(ref _nextMappingId), space, addr, l, isWrite, MappingKind.Bounce, mr, 0, buffer);
        if (Profile == Profile.Qemu72) _globalBounce = mapping;
        if (!isWrite && !Has(Fault.ReadAtUnmap)) FillFromDevice(view, mapping);   // B72-4 / BM-4
        // Stryker disable once all : broken-variant code (docs/mutation-testing.md)
        if (isWrite && Has(Fault.WriteBackAtMap)) Write(space, addr, buffer.Data);
        AddLive(mapping);
        return new MapResult(mapping, l, MapFailure.None);
    }

    /// <summary>B72-1: qatomic_xchg(&amp;bounce.in_use, true); false if it was already taken.</summary>
    private bool ClaimGlobalBounce()
    {
        var il = Interleaver;
        il?.Point("claim bounce.in_use");
        if (!Has(Fault.NonAtomicBounceClaim)) return Interlocked.Exchange(ref _globalBounceInUse, 1) == 0;
        // Stryker disable all : broken-variant code (NonAtomicBounceClaim)
        bool taken = Volatile.Read(ref _globalBounceInUse) != 0;
        if (taken) return false;
        il?.Point("store bounce.in_use");
        Volatile.Write(ref _globalBounceInUse, 1);
        return true;
        // Stryker restore all
    }

    /// <summary>BM-1: reserve min(request, max - used) of the address space's budget with a
    /// qatomic_cmpxchg loop on bounce_buffer_size; returns the bytes reserved (0: none left).</summary>
    private ulong ReserveBudget(AddressSpace space, ulong request)
    {
        var il = Interleaver;
        il?.Point("read bounce_buffer_size");
        ulong used = Volatile.Read(ref space.Reserved);
        for (; ; )
        {
            // size_t arithmetic: a counter that underflowed (a broken release) makes max - used wrap
            ulong alloc = Math.Min(unchecked(space.MaxBounceBufferSize - used), request);
            il?.Point("update bounce_buffer_size");
            // Stryker disable all : broken-variant code (NonAtomicBounceClaim)
            if (Has(Fault.NonAtomicBounceClaim))
            {
                Volatile.Write(ref space.Reserved, used + alloc);
                return alloc;
            }
            // Stryker restore all
            ulong actual = Interlocked.CompareExchange(ref space.Reserved, used + alloc, used);
            if (actual == used) return alloc;
            used = actual;
        }
    }

    private void AddLive(Mapping m)
    {
        _live.Add(m);
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
    /// RAMBlock), otherwise the rest of the section (the slow path dispatches each access): a ring or an
    /// indirect table that runs past the end of an MMIO region is cut there.
    /// </summary>
    public RegionCache OpenCache(AddressSpace space, ulong addr, ulong len, bool isWrite)
    {
        var view = space.View;
        var section = view.Translate(addr);
        // address_space_cache_init cuts the length at the end of the section whatever the region is (RC-1),
        // unlike address_space_map, where only RAM is cut (M4)
        ulong l = (ulong)UInt128.Min(len, section.RemainingInRange);
        var mr = section.Region;
        Ref(mr);
        // Stryker disable once Equality : equivalent, the direct run of a 0-byte request is 0 bytes either way
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
    /// <paramref name="accessLen"/> above the mapped length is caller misuse (docs/qemu-rules.md, U1) and rejected.
    /// </summary>
    public UnmapResult Unmap(Mapping m, ulong accessLen) => Unmap(m, accessLen, notify: true);

    /// <summary>
    /// The first half of a bounce unmap — write-back, free, release — without the notification that QEMU
    /// issues afterwards as a separate step (U72-3 / UM-4 call cpu_notify_map_clients after the release).
    /// A concurrent history is only explained by a sequential one if these two halves may be separated;
    /// complete it with <see cref="NotifyMapClients"/>.
    /// </summary>
    public UnmapResult UnmapBeforeNotifying(Mapping m, ulong accessLen) => Unmap(m, accessLen, notify: false);

    private UnmapResult Unmap(Mapping m, ulong accessLen, bool notify)
    {
        if (accessLen > m.Length && m.Live)
            throw new ArgumentOutOfRangeException(nameof(accessLen), $"access_len {accessLen} exceeds mapped length {m.Length}");
        if (!m.TryRetire()) return UnmapResult.NotLive;
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
            Interlocked.Add(ref _unproducedBytesWrittenBack, never + zero);
        }
        // Stryker disable once all : broken-variant code (docs/mutation-testing.md)
        if (!m.IsWrite && Has(Fault.ReadAtUnmap)) FillFromDevice(m.AddressSpace.View, m);

        // U72-2: QEMU 7.2 frees the buffer and unreferences the region before it releases the one buffer.
        // UM-2: from 9.2 the budget is returned first, then the region unreferenced and the buffer freed.
        bool releaseFirst = Profile == Profile.Qemu92;
        if (!releaseFirst) FreeBounceBuffer(m, budgetReturned: false);
        IReadOnlyList<string> scheduled = Array.Empty<string>();
        // Stryker disable all : broken-variant code (LeakBounceSpace, NotifyBeforeRelease)
        if (Has(Fault.LeakBounceSpace))
        {
            if (releaseFirst) FreeBounceBuffer(m, budgetReturned: false);
            scheduled = NotifyMapClients(m.AddressSpace);
        }
        else if (Has(Fault.NotifyBeforeRelease))
        {
            scheduled = NotifyMapClients(m.AddressSpace);
            ReleaseBounceSpace(m);
            if (releaseFirst) FreeBounceBuffer(m, budgetReturned: true);
        }
        else
        {
            // Stryker restore all
            // U72-3 / UM-4: release with a full barrier, then notify every waiting client.
            ReleaseBounceSpace(m);
            if (releaseFirst) FreeBounceBuffer(m, budgetReturned: true);
            if (notify) scheduled = NotifyMapClients(m.AddressSpace);
        }
        return new UnmapResult(true, written, never, zero, scheduled);
    }

    /// <summary>memory_region_unref(bounce->mr) and the buffer's free (qemu_vfree / g_free).</summary>
    private void FreeBounceBuffer(Mapping m, bool budgetReturned)
    {
        // between returning the budget and freeing, another thread can map with that budget (UM-2)
        if (budgetReturned) Interleaver?.Point("free bounce buffer");
        lock (_bounceBook)
        {
            m.AddressSpace.Allocated -= (long)m.Length;
            if (budgetReturned) m.AddressSpace.Freeing -= (long)m.Length;
            _bounceBuffersAllocated--;
        }
        Unref(m.Region);
    }

    /// <summary>U72-3 qatomic_mb_set(&amp;bounce.in_use, false) / UM-2 qatomic_sub(&amp;as->bounce_buffer_size, len).</summary>
    private void ReleaseBounceSpace(Mapping m)
    {
        Interleaver?.Point("release bounce space");
        if (Profile == Profile.Qemu72)
        {
            _globalBounce = null;
            Interlocked.Exchange(ref _globalBounceInUse, 0);
            return;
        }
        // the buffer still exists with its budget returned (UM-2); the bookkeeping notes it at the same
        // instant as the qatomic_sub, so that an observer never sees the returned bytes taken and not noted
        lock (_bounceBook)
        {
            Interlocked.Add(ref m.AddressSpace.Reserved, 0UL - m.Length);
            m.AddressSpace.Freeing += (long)m.Length;
        }
        // Stryker disable once all : broken-variant code (docs/mutation-testing.md)
        if (Has(Fault.DoubleBudgetRelease)) Interlocked.Add(ref m.AddressSpace.Reserved, 0UL - m.Length);
    }

    /// <summary>cpu_notify_map_clients / address_space_notify_map_clients: under the list's mutex, schedule
    /// and remove every waiting client.</summary>
    public IReadOnlyList<string> NotifyMapClients(AddressSpace space)
    {
        var il = Interleaver;
        il?.Point("notify map clients");
        var list = ClientsFor(space);
        bool locked = !Has(Fault.UnlockedClientList);
        if (locked) list.Lock.Enter(il);
        try { return Schedule(list.TakeAll(il)); }
        finally { if (locked) list.Lock.Exit(il); }
    }

    // ------------------------------------------------------------------ map clients

    private MapClientList ClientsFor(AddressSpace space) => Profile == Profile.Qemu72 ? _globalClients : space.MapClients;

    private bool HasBounceCapacity(AddressSpace space) => Profile == Profile.Qemu72
        ? !GlobalBounceInUse
        : space.BounceBufferSize < space.MaxBounceBufferSize;

    /// <summary>cpu_register_map_client (Qemu72, one global list) / address_space_register_map_client (Qemu92, per AS).
    /// Under the list's mutex: insert, full barrier, and if capacity exists right now schedule every waiting
    /// client at once (C2). Returns what was scheduled.</summary>
    public IReadOnlyList<string> RegisterMapClient(AddressSpace space, string client)
    {
        var il = Interleaver;
        var list = ClientsFor(space);
        bool locked = !Has(Fault.UnlockedClientList);
        if (locked) list.Lock.Enter(il);
        try
        {
            list.Register(client, il);
            // Stryker disable once Statement : not observable by a test: the missing barrier only matters if this x86 core reorders the store before the load, which the sequentially consistent controlled scheduler never does
            Interlocked.MemoryBarrier();   // smp_mb: the insertion is visible before the capacity is read
            il?.Point("check bounce capacity");
            return HasBounceCapacity(space) ? Schedule(list.TakeAll(il)) : Array.Empty<string>();
        }
        finally { if (locked) list.Lock.Exit(il); }
    }

    /// <summary>cpu_unregister_map_client: removes the record if it has not fired yet.</summary>
    public bool UnregisterMapClient(AddressSpace space, string client)
    {
        // Stryker disable once all : broken-variant code (docs/mutation-testing.md)
        if (Has(Fault.UnregisterIgnored)) return false;
        var il = Interleaver;
        var list = ClientsFor(space);
        bool locked = !Has(Fault.UnlockedClientList);
        if (locked) list.Lock.Enter(il);
        try { return list.Unregister(client, il); }
        finally { if (locked) list.Lock.Exit(il); }
    }

    public IReadOnlyList<string> RegisteredMapClients(AddressSpace space) => ClientsFor(space).Registered;

    /// <summary>Bottom halves scheduled and not yet run.</summary>
    public IReadOnlyList<string> PendingBottomHalves
    {
        get { lock (_pendingBottomHalves) return _pendingBottomHalves.ToArray(); }
    }

    private IReadOnlyList<string> Schedule(string[] clients)
    {
        if (clients.Length == 0) return clients;
        lock (_pendingBottomHalves)   // qemu_bh_schedule: an atomic flag, idempotent
            foreach (var c in clients)
                if (!_pendingBottomHalves.Contains(c)) _pendingBottomHalves.Add(c);
        return clients;
    }

    /// <summary>The main loop runs the scheduled bottom halves (C1: callbacks are never synchronous).</summary>
    public IReadOnlyList<string> RunBottomHalves()
    {
        lock (_pendingBottomHalves)
        {
            if (_pendingBottomHalves.Count == 0) return Array.Empty<string>();
            var ran = _pendingBottomHalves.ToArray();
            _pendingBottomHalves.Clear();
            return ran;
        }
    }

    // ------------------------------------------------------------------ one-at-a-time access

    /// <summary>address_space_read → flatview_read_continue.</summary>
    public void Read(AddressSpace space, ulong addr, Span<byte> destination) => ReadView(space.View, addr, destination);

    /// <summary>address_space_write → flatview_write_continue.</summary>
    public void Write(AddressSpace space, ulong addr, ReadOnlySpan<byte> source)
    {
        var view = space.View;
        int pos = 0;
        Section section = default;   // no range: the first step translates
        ulong step = 0;
        while (pos < source.Length)
        {
            section = NextSection(view, section, step, addr);
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
            step = l;
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
        Section section = default;   // no range: the first step translates
        ulong step = 0;
        while (pos < destination.Length)
        {
            section = NextSection(view, section, step, addr);
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
            step = l;
        }
    }

    /// <summary>
    /// The section of <paramref name="addr"/>, <paramref name="step"/> bytes after the previous one's. QEMU
    /// translates afresh in every iteration of flatview_read_continue/flatview_write_continue, but all of
    /// them within one RCU read section of one FlatView, whose ranges are disjoint: while the transfer stays
    /// inside the previous flat range the answer is that range again, further in, so only leaving it (or a
    /// hole, which has no range) needs the lookup. A bounce write-back to MMIO is 1,024 of these steps.
    /// </summary>
    private static Section NextSection(FlatView view, Section previous, ulong step, ulong addr) =>
        previous.Range is not null && step < previous.RemainingInRange
            ? previous with { Xlat = previous.Xlat + step, RemainingInRange = previous.RemainingInRange - step }
            : view.Translate(addr);

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
        // Stryker disable once all : unreachable in the model: its access rules have one unaligned flag (valid = impl), and memory_access_size has already cut an unaligned access to its alignment
        if (!mr.Device.Rules.ImplUnaligned && (addr & (size - 1)) != 0) return false;
        if (mr.Device.Rules.ValidMaxAccessSize == 0) return true;
        // Stryker disable once Logical : equivalent, memory_access_size never hands over more than the valid maximum nor 0 bytes
        return size <= mr.Device.Rules.ValidMaxAccessSize && size >= 1;
    }

    /// <summary>memory_region_dispatch_read → access_with_adjusted_size; invalid accesses read as 0 (unassigned_mem_read).</summary>
    private ulong DispatchRead(MemoryRegion mr, ulong addr, uint size)
    {
        if (!AccessValid(mr, addr, size)) return 0;
        var il = Interleaver;
        _bql.Enter(il);   // prepare_mmio_access: device callbacks run under the BQL, one access at a time
        try { return DispatchReadLocked(mr, addr, size); }
        finally { _bql.Exit(il); }
    }

    private ulong DispatchReadLocked(MemoryRegion mr, ulong addr, uint size)
    {
        var rules = mr.Device!.Rules;
        uint accessSize = Math.Max(Math.Min(size, rules.EffectiveImplMax), rules.EffectiveImplMin);
        ulong mask = accessSize >= 8 ? ulong.MaxValue : (1UL << (int)(accessSize * 8)) - 1;
        ulong value = 0;
        for (uint i = 0; i < size; i += accessSize)
        {
            var access = mr.Device.Read(addr + i, accessSize);
            _journal.Add(mr.Name, access);
            value |= (access.Value & mask) << (int)(i * 8);
        }
        return value;
    }

    /// <summary>memory_region_dispatch_write; invalid accesses are dropped (unassigned_mem_write).</summary>
    private void DispatchWrite(MemoryRegion mr, ulong addr, uint size, ulong value)
    {
        if (!AccessValid(mr, addr, size)) return;
        var il = Interleaver;
        _bql.Enter(il);
        try { DispatchWriteLocked(mr, addr, size, value); }
        finally { _bql.Exit(il); }
    }

    private void DispatchWriteLocked(MemoryRegion mr, ulong addr, uint size, ulong value)
    {
        var rules = mr.Device!.Rules;
        uint accessSize = Math.Max(Math.Min(size, rules.EffectiveImplMax), rules.EffectiveImplMin);
        ulong mask = accessSize >= 8 ? ulong.MaxValue : (1UL << (int)(accessSize * 8)) - 1;
        for (uint i = 0; i < size; i += accessSize)
            _journal.Add(mr.Name, mr.Device.Write(addr + i, accessSize, (value >> (int)(i * 8)) & mask));
    }

    // ------------------------------------------------------------------ references and dirty memory

    /// <summary>memory_region_ref → object_ref (qatomic_inc); owner-less regions are not counted.</summary>
    private void Ref(MemoryRegion mr) => AddRef(mr, +1);

    /// <summary>memory_region_unref → object_unref (qatomic_fetch_dec).</summary>
    private void Unref(MemoryRegion mr) => AddRef(mr, -1);

    private void AddRef(MemoryRegion mr, int delta)
    {
        if (mr.Owner is not { } owner) return;
        var il = Interleaver;
        il?.Point(delta > 0 ? "ref" : "unref");
        if (!Has(Fault.NonAtomicRef))
        {
            Interlocked.Add(ref owner.Count, delta);
            return;
        }
        // Stryker disable all : broken-variant code (NonAtomicRef)
        int v = Volatile.Read(ref owner.Count);
        il?.Point(delta > 0 ? "store ref" : "store unref");
        Volatile.Write(ref owner.Count, v + delta);
        // Stryker restore all
    }

    /// <summary>The dirty clients active for a region (memory_region_get_dirty_log_mask).</summary>
    public IReadOnlyList<DirtyClient> ActiveClients(MemoryRegion mr)
    {
        int set = (mr.LogVga ? 1 : 0)
            | (_topology.Dirty.Code && mr.RamBlock is not null ? 2 : 0)
            | (_topology.Dirty.Migration && mr.RamBlock is not null ? 4 : 0);
        return ClientSets[set];
    }

    /// <summary>Every set of dirty clients, in client order, by bits (1 VGA, 2 code, 4 migration): every
    /// write to RAM asks which are active (a virtqueue push makes several), without allocating.</summary>
    private static readonly DirtyClient[][] ClientSets = Enumerable.Range(0, 8)
        .Select(bits => new[] { DirtyClient.Vga, DirtyClient.Code, DirtyClient.Migration }.Where((_, i) => (bits & (1 << i)) != 0).ToArray())
        .ToArray();

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
