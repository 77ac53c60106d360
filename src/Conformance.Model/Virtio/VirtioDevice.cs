using System.Buffers.Binary;

namespace Conformance.Model.Virtio;

/// <summary>
/// The transport-independent part of a virtio device with split virtqueues (hw/virtio/virtio.c, QEMU 7.2):
/// queue setup with its region caches, virtqueue_pop mapping every descriptor through the DMA model,
/// fill/flush/push/detach/unpop/rewind, the notification decision, and virtio_error.
/// Ring memory is read and written through the device's DMA address space.
/// The rules followed (POP-1 to POP-3, PUSH-1, RC-1, R5) are described in docs/qemu-rules.md.
/// </summary>
public sealed class VirtioDevice
{
    private readonly List<string> _errors = new();
    private readonly List<RingWrite> _ringWrites = new();
    private int _nextElementId = 1;

    public VirtioDevice(MemorySystem memory, AddressSpace dmaAs, int queues, ulong features, VirtioFault faults = VirtioFault.None)
    {
        Memory = memory;
        DmaAs = dmaAs;
        Features = features;
        Faults = faults;
        Queues = Enumerable.Range(0, queues).Select(i => new VirtQueue(i)).ToArray();
    }

    public MemorySystem Memory { get; }

    /// <summary>vdev->dma_as: address_space_memory unless iommu_platform is on.</summary>
    public AddressSpace DmaAs { get; }

    /// <summary>Negotiated feature bits.</summary>
    public ulong Features { get; }

    public VirtioFault Faults { get; }
    public VirtQueue[] Queues { get; }
    public byte Status { get; private set; } = InitialStatus;
    public bool Broken { get; private set; }
    public IReadOnlyList<string> Errors => _errors;

    /// <summary>Bounce bytes that failed pops had been granted and gave back when they undid their mappings
    /// (hw/virtio/virtio.c:virtqueue_undo_map_desc). An observation for harnesses: a QEMU that undoes them
    /// against the wrong address space keeps counting exactly these bytes against the device's budget
    /// (F-QEMU-2 in docs/qemu-versions.md).</summary>
    public ulong BounceBytesUndone { get; private set; }

    /// <summary>Interrupts raised (virtio_notify deciding to notify).</summary>
    public int Interrupts { get; private set; }

    /// <summary>Every write to a used ring, in order (to check that entries precede the index).</summary>
    public IReadOnlyList<RingWrite> RingWrites => _ringWrites;   // with a "reset" entry where the device was reset

    /// <summary>Descriptors read by pops, in total (for the bound on chain walks).</summary>
    public int DescriptorReads { get; private set; }

    public bool Has(int feature) => (Features & (1UL << feature)) != 0;
    private bool Has(VirtioFault f) => (Faults & f) != 0;

    /// <summary>virtio_error: the device is broken until reset; VERSION_1 drivers see NEEDS_RESET.</summary>
    public void VirtioError(string message)
    {
        _errors.Add(message);
        if (Has(VirtioConstants.FeatureVersion1)) Status |= VirtioConstants.StatusNeedsReset;
        Broken = true;
    }

    /// <summary>virtio_device_disabled: broken (the model has no other disabling).</summary>
    public bool Disabled => Broken;

    // ------------------------------------------------------------------ setup and reset

    /// <summary>
    /// virtio_queue_set_num + virtio_queue_set_addresses → virtio_init_region_cache: each ring must be
    /// covered by one cache, else virtio_error "Cannot map desc/used/avail".
    /// </summary>
    public void SetupQueue(int index, int num, ulong desc, ulong avail, ulong used)
    {
        if (num <= 0 || num > VirtioConstants.MaxQueueSize || (num & (num - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(num), "split queue sizes are powers of two up to 1024 in this model");
        var vq = Queues[index];
        DropCaches(vq);
        vq.Num = num;
        vq.DescAddr = desc;
        vq.AvailAddr = avail;
        vq.UsedAddr = used;
        // virtio.c:virtio_init_region_cache keeps no caches for a queue without a descriptor table, and
        // reports nothing: its ring accesses read 0 and write nothing
        if (desc == 0) return;
        bool eventIdx = Has(VirtioConstants.FeatureEventIdx);
        var caches = new List<RegionCache>();
        foreach (var (addr, size, write, name) in new[]
                 {
                     (desc, VirtioConstants.DescTableSize(num), false, "desc"),
                     (used, VirtioConstants.UsedSize(num, eventIdx), true, "used"),
                     (avail, VirtioConstants.AvailSize(num, eventIdx), false, "avail"),
                 })
        {
            var cache = Memory.OpenCache(DmaAs, addr, size, write);
            if (cache.Length < size)
            {
                Memory.CloseCache(cache);
                foreach (var c in caches) Memory.CloseCache(c);
                VirtioError($"Cannot map {name}");
                return;
            }
            caches.Add(cache);
        }
        vq.Caches = caches.ToArray();
    }

    private void DropCaches(VirtQueue vq)
    {
        if (vq.Caches is null) return;
        foreach (var c in vq.Caches) Memory.CloseCache(c);
        vq.Caches = null;
    }

    /// <summary>The driver sets ACKNOWLEDGE, DRIVER and DRIVER_OK again after a reset (the status a new device
    /// starts with in the model).</summary>
    public void DriverOk() => Status = InitialStatus;

    private const byte InitialStatus = 0x7;

    /// <summary>virtio_reset: per-queue state back to zero without unmapping outstanding elements (R5).</summary>
    public void Reset()
    {
        foreach (var vq in Queues)
        {
            DropCaches(vq);
            vq.Num = 0;
            vq.DescAddr = vq.AvailAddr = vq.UsedAddr = 0;
            vq.LastAvailIdx = vq.ShadowAvailIdx = vq.UsedIdx = 0;
            vq.InUse = 0;
            vq.SignalledUsed = 0;
            vq.SignalledUsedValid = false;
            vq.Notification = true;
        }
        Broken = false;
        Status = 0;
        _errors.Clear();
        _ringWrites.Add(new RingWrite("reset", -1, 0));   // not a ring write: where the used ring starts over
    }

    // ------------------------------------------------------------------ ring access (little-endian)

    private VringDesc ReadDesc(ulong table, uint i)
    {
        Span<byte> b = stackalloc byte[VirtioConstants.DescSize];
        Memory.Read(DmaAs, table + (ulong)i * VirtioConstants.DescSize, b);
        DescriptorReads++;
        return VringDesc.Decode(b);
    }

    // virtio.c:vring_avail_idx / vring_avail_flags / vring_avail_ring read 0 from a queue without ring caches
    // (one whose descriptor table is at 0, or whose setup failed), and the index read leaves shadow_avail_idx alone
    private ushort AvailIdx(VirtQueue vq) =>
        vq.Caches is null ? (ushort)0 : vq.ShadowAvailIdx = Memory.LoadU16Le(DmaAs, VirtioConstants.AvailIdxAddr(vq.AvailAddr));
    private ushort AvailFlags(VirtQueue vq) => vq.Caches is null ? (ushort)0 : Memory.LoadU16Le(DmaAs, vq.AvailAddr);
    private ushort AvailRing(VirtQueue vq, int i) =>
        vq.Caches is null ? (ushort)0 : Memory.LoadU16Le(DmaAs, VirtioConstants.AvailRingAddr(vq.AvailAddr, i));

    /// <summary>A 16-bit store into the used ring, recorded so that write order can be checked.</summary>
    private void StoreUsed16(string what, ulong addr, ushort value, int slot = -1)
    {
        Memory.StoreU16Le(DmaAs, addr, value);
        _ringWrites.Add(new RingWrite(what, slot, value));
    }
    private ushort UsedEvent(VirtQueue vq) => AvailRing(vq, vq.Num);

    private void SetAvailEvent(VirtQueue vq, ushort value)
    {
        if (!vq.Notification || vq.Caches is null) return;   // vring_set_avail_event
        StoreUsed16("avail_event", VirtioConstants.AvailEventAddr(vq.UsedAddr, vq.Num), value, vq.Num);
    }

    // ------------------------------------------------------------------ pop

    /// <summary>virtio_queue_empty (split): disabled or not set up counts as empty.</summary>
    public bool QueueEmpty(VirtQueue vq)
    {
        if (Disabled || !vq.Ready) return true;
        if (vq.ShadowAvailIdx != vq.LastAvailIdx) return false;
        return AvailIdx(vq) == vq.LastAvailIdx;
    }

    /// <summary>virtqueue_pop → virtqueue_split_pop, in QEMU's order of checks (docs/qemu-rules.md, POP-1).</summary>
    public PopResult Pop(VirtQueue vq)
    {
        if (Disabled) return PopResult.Empty;
        if (QueueEmpty(vq)) return PopResult.Empty;
        int max = vq.Num;
        if (vq.InUse >= vq.Num && !Has(VirtioFault.NoInUseCheck)) return Fail("Virtqueue size exceeded");

        ushort headIdx = vq.LastAvailIdx++;
        uint head = AvailRing(vq, headIdx % vq.Num);
        if (head >= vq.Num) return Fail($"Guest says index {head} is available");
        if (Has(VirtioConstants.FeatureEventIdx)) SetAvailEvent(vq, vq.LastAvailIdx);
        if (vq.Caches is null) return Fail("Region caches not initialized");
        // Stryker disable once Equality : equivalent, SetupQueue keeps a descriptor cache only when it covers exactly DescTableSize(num) (OpenCache never returns more than asked), so neither < nor > holds
        if (vq.Caches[0].Length < VirtioConstants.DescTableSize(vq.Num)) return Fail("Cannot map descriptor ring");

        ulong table = vq.DescAddr;
        uint i = head;
        var desc = ReadDesc(table, i);
        RegionCache? indirect = null;
        var outSg = new List<SgEntry>();
        var inSg = new List<SgEntry>();
        try
        {
            if (desc.IsIndirect)
            {
                if (desc.Len == 0 || desc.Len % VirtioConstants.DescSize != 0) return Fail("Invalid size for indirect buffer table");
                indirect = Memory.OpenCache(DmaAs, desc.Addr, desc.Len, false);
                if (indirect.Value.Length < desc.Len) return Fail("Cannot map indirect buffer");
                max = (int)(desc.Len / VirtioConstants.DescSize);
                table = desc.Addr;
                i = 0;
                desc = ReadDesc(table, i);
            }

            int entries = 0;
            int safetyCap = 4 * max + 4;   // only reachable with NoLoopDetection
            for (; ; )
            {
                string? error;
                if (desc.IsWrite) error = MapDesc(inSg, VirtioConstants.MaxQueueSize - outSg.Count, true, desc.Addr, desc.Len);
                else if (inSg.Count > 0) error = "Incorrect order for descriptors";
                else error = MapDesc(outSg, VirtioConstants.MaxQueueSize, false, desc.Addr, desc.Len);
                if (error is not null) return Undo(error, outSg, inSg);

                if (++entries > max && !Has(VirtioFault.NoLoopDetection)) return Undo("Looped descriptor", outSg, inSg);
                if (entries > safetyCap) return Undo("model safety cap on chain length", outSg, inSg);

                if (!desc.HasNext) break;
                uint next = desc.Next;
                if (next >= max) return Undo($"Desc next is {next}", outSg, inSg);
                desc = ReadDesc(table, next);
            }
            vq.InUse++;
            return new PopResult(new VirtQueueElement(_nextElementId++, head, outSg, inSg), null);
        }
        finally
        {
            if (indirect is { } c) Memory.CloseCache(c);   // address_space_cache_destroy
        }
    }

    private PopResult Fail(string message)
    {
        VirtioError(message);
        return new PopResult(null, message);
    }

    /// <summary>virtqueue_undo_map_desc: everything mapped for the element is unmapped with access_len 0.</summary>
    private PopResult Undo(string message, List<SgEntry> outSg, List<SgEntry> inSg)
    {
        VirtioError(message);
        if (!Has(VirtioFault.NoUndoOnError))
            foreach (var e in outSg.Concat(inSg))
            {
                if (e.Mapping.Kind == MappingKind.Bounce) BounceBytesUndone += e.Mapping.Length;
                Memory.Unmap(e.Mapping, 0);
            }
        return new PopResult(null, message);
    }

    /// <summary>virtqueue_map_desc: one descriptor may become several pieces; returns the virtio_error text on failure.</summary>
    private string? MapDesc(List<SgEntry> sg, int maxSg, bool isWrite, ulong pa, uint size)
    {
        if (size == 0) return "virtio: zero sized buffers are not allowed";
        ulong sz = size;
        while (sz > 0)
        {
            if (sg.Count == maxSg) return "virtio: too many write descriptors in indirect table";
            var r = Memory.Map(DmaAs, pa, sz, isWrite);
            if (r.Mapping is null) return "virtio: bogus descriptor or out of resources";
            sg.Add(new SgEntry(r.Mapping, pa, r.Length));
            sz -= r.Length;
            pa += r.Length;
        }
        return null;
    }

    // ------------------------------------------------------------------ completion

    /// <summary>virtqueue_unmap_sg: the first <paramref name="len"/> bytes of the in pieces count as written;
    /// out pieces are unmapped with their full length (a read unmap writes nothing back).</summary>
    private void UnmapSg(VirtQueueElement elem, uint len)
    {
        if (elem.Released) throw new InvalidOperationException($"element {elem.Id} was already released");
        elem.Released = true;
        // the LengthToOutBuffers fault counts the written length against the wrong list
        var (written, other) = Has(VirtioFault.LengthToOutBuffers) ? (elem.Out, elem.In) : (elem.In, elem.Out);
        ulong offset = 0;
        foreach (var e in written)
        {
            ulong size = Math.Min(len - offset, e.Length);
            Memory.Unmap(e.Mapping, size);
            offset += size;
        }
        // Stryker disable once Conditional : equivalent, address_space_unmap uses access_len only for write mappings (dirtying, bounce write-back); a read piece unmapped with 0 or its length is the same
        foreach (var e in other) Memory.Unmap(e.Mapping, e.Mapping.IsWrite ? 0 : e.Length);
    }

    /// <summary>virtqueue_fill: unmap, then (unless broken) write the used element at used_idx + idx.</summary>
    public void Fill(VirtQueue vq, VirtQueueElement elem, uint len, int idx)
    {
        UnmapSg(elem, len);
        if (Disabled || vq.Caches is null) return;
        int slot = (vq.UsedIdx + idx) % vq.Num;
        // Stryker disable once all : broken-variant code (docs/mutation-testing.md)
        if (Has(VirtioFault.IndexBeforeEntry)) StoreUsed16("idx", VirtioConstants.UsedIdxAddr(vq.UsedAddr), (ushort)(vq.UsedIdx + idx + 1));
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(b, elem.Head);
        // Stryker disable once Arithmetic : the only arithmetic here is the broken variant's len + 1 (ReportedLenPlusOne), off in the reference model
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Has(VirtioFault.ReportedLenPlusOne) ? len + 1 : len);
        Memory.Write(DmaAs, VirtioConstants.UsedElemAddr(vq.UsedAddr, slot), b);
        _ringWrites.Add(new RingWrite("elem", slot, ((ulong)len << 32) | elem.Head));
    }

    /// <summary>virtqueue_flush: publish count filled elements (broken: only inuse -= count).</summary>
    public void Flush(VirtQueue vq, int count)
    {
        if (Disabled)
        {
            vq.InUse -= count;
            return;
        }
        if (vq.Caches is null) return;
        ushort old = vq.UsedIdx;
        ushort @new = (ushort)(old + count);
        StoreUsed16("idx", VirtioConstants.UsedIdxAddr(vq.UsedAddr), @new);
        vq.UsedIdx = @new;
        if (!Has(VirtioFault.FlushKeepsInUse)) vq.InUse -= count;
        if ((short)(@new - vq.SignalledUsed) < (ushort)(@new - old)) vq.SignalledUsedValid = false;
    }

    /// <summary>virtqueue_push = fill(elem, len, 0) + flush(1).</summary>
    public void Push(VirtQueue vq, VirtQueueElement elem, uint len)
    {
        Fill(vq, elem, len, 0);
        Flush(vq, 1);
    }

    /// <summary>virtqueue_detach_element: release without a used entry.</summary>
    public void Detach(VirtQueue vq, VirtQueueElement elem, uint len)
    {
        vq.InUse -= 1;
        UnmapSg(elem, len);
    }

    /// <summary>virtqueue_unpop: the next pop refetches (and re-maps) the same chain.</summary>
    public void Unpop(VirtQueue vq, VirtQueueElement elem, uint len)
    {
        vq.LastAvailIdx--;
        Detach(vq, elem, len);
    }

    /// <summary>virtqueue_rewind: false if num exceeds inuse; does not unmap.</summary>
    public bool Rewind(VirtQueue vq, int num)
    {
        if (num > vq.InUse) return false;
        vq.InUse -= num;
        vq.LastAvailIdx -= (ushort)num;
        return true;
    }

    // ------------------------------------------------------------------ notifications

    /// <summary>virtio_split_should_notify.</summary>
    public bool ShouldNotify(VirtQueue vq)
    {
        // Stryker disable once all : broken-variant code (docs/mutation-testing.md)
        if (Has(VirtioFault.AlwaysNotify)) return true;
        if (Has(VirtioConstants.FeatureNotifyOnEmpty) && vq.InUse == 0 && QueueEmpty(vq)) return true;
        if (!Has(VirtioConstants.FeatureEventIdx)) return (AvailFlags(vq) & VirtioConstants.AvailFlagNoInterrupt) == 0;
        bool v = vq.SignalledUsedValid;
        vq.SignalledUsedValid = true;
        ushort old = vq.SignalledUsed;
        ushort @new = vq.SignalledUsed = vq.UsedIdx;
        return !v || VirtioConstants.NeedEvent(UsedEvent(vq), @new, old);
    }

    /// <summary>virtio_notify: raise the interrupt when the driver wants one. Returns whether it did.</summary>
    public bool Notify(VirtQueue vq)
    {
        if (Disabled || !vq.Ready || !ShouldNotify(vq)) return false;
        Interrupts++;
        return true;
    }

    /// <summary>virtio_queue_set_notification (split).</summary>
    public void SetNotification(VirtQueue vq, bool enable)
    {
        vq.Notification = enable;
        // virtio.c:virtio_queue_set_notification returns for a queue without a descriptor table (an available
        // ring at 0 does not stop it); such a queue has no ring caches (SetupQueue), and without caches every ring
        // access of the rest returns, so "no caches" is the whole condition
        if (vq.Caches is null) return;
        if (Has(VirtioConstants.FeatureEventIdx)) SetAvailEvent(vq, AvailIdx(vq));
        else
        {
            ushort flags = Memory.LoadU16Le(DmaAs, vq.UsedAddr);
            StoreUsed16("flags", vq.UsedAddr, enable ? (ushort)(flags & ~VirtioConstants.UsedFlagNoNotify) : (ushort)(flags | VirtioConstants.UsedFlagNoNotify));
        }
    }
}
