/// Single rules of QEMU's split virtqueue (hw/virtio/virtio.c, QEMU 7.2) pinned down by example on the
/// model's VirtioDevice: what a guest sees in its rings, in the device status and in interrupts.
module Conformance.Properties.Tests.VirtioRuleTests

open System
open System.Buffers.Binary
open Xunit
open Conformance.Model
open Conformance.Model.Virtio
open Conformance.Properties.LayoutBuilding
open Conformance.Properties.Oracle

/// 64 KiB of RAM at 0 and another 64 KiB of RAM right after it (a descriptor may cross from one to the other).
let private layout =
    Spec.OneSpace
        [ Spec.Region("ram", RegionKind.Ram, u128 0x10000UL)
          Spec.Region("ram2", RegionKind.Ram, u128 0x10000UL, 0x10000UL) ]

let private bit feature = 1UL <<< feature
let private eventIdx = bit VirtioConstants.FeatureEventIdx

let private descAddr, availAddr, usedAddr = 0x1000UL, 0x2000UL, 0x3000UL

/// A device with one queue of <paramref name="num"/> set up at 0x1000/0x2000/0x3000, and its driver.
let private deviceWith (features: uint64) (faults: VirtioFault) (num: int) =
    let s = MemorySystem(layout, Profile.Qemu72)
    let mem = s.Space "memory"
    let device = VirtioDevice(s, mem, 2, features, faults)
    let driver = SplitRingDriver(s, mem, num, descAddr, availAddr, usedAddr)
    driver.ClearRings((features &&& eventIdx) <> 0UL)
    device.SetupQueue(0, num, descAddr, availAddr, usedAddr)
    s, device, driver

let private load16 (s: MemorySystem) (addr: uint64) =
    let b = Array.zeroCreate<byte> 2
    s.Read(s.Space "memory", addr, Span b)
    BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan b)

let private guestBytes (s: MemorySystem) (addr: uint64) (len: int) =
    let b = Array.zeroCreate<byte> len
    s.Read(s.Space "memory", addr, Span b)
    b

/// avail_event (used->ring[num]), where the device tells an EVENT_IDX driver which avail index to kick at.
let private availEvent s num =
    load16 s (VirtioConstants.AvailEventAddr(usedAddr, num))

let private writable (addr: uint64) (len: uint32) =
    VringDesc(addr, len, VirtioConstants.DescFlagWrite, 0us)

/// Publishes one device-writable buffer per head and pops them all.
let private popWritable (device: VirtioDevice) (driver: SplitRingDriver) (heads: uint16 list) =
    for h in heads do
        driver.WriteDescriptor(int h, writable (0x8000UL + 0x100UL * uint64 h) 16u)

    driver.Publish heads
    [ for _ in heads -> (device.Pop device.Queues.[0]).Element ]

let private refCountsAtBaseline (s: MemorySystem) =
    for o in s.Owners do
        Assert.True((o.RefCount = Owner.Baseline), sprintf "%s keeps %d references" o.Name o.RefCount)

/// virtio_error: a VERSION_1 device sets NEEDS_RESET in its status, and a second error leaves it set
/// (the bit is or-ed in, never toggled).
[<Fact>]
let ``virtio_error sets NEEDS_RESET for a VERSION_1 driver, and a second error keeps it set`` () =
    let _, device, _ =
        deviceWith (bit VirtioConstants.FeatureVersion1) VirtioFault.None 4

    device.VirtioError "first"
    device.VirtioError "second"
    Assert.True(device.Broken)
    Assert.Equal(VirtioConstants.StatusNeedsReset, device.Status &&& VirtioConstants.StatusNeedsReset)
    Assert.Equal<string list>([ "first"; "second" ], List.ofSeq device.Errors)

/// VIRTQUEUE_MAX_SIZE is 1024: a queue of exactly 1024 entries is accepted.
[<Fact>]
let ``a split queue of VIRTQUEUE_MAX_SIZE (1024) entries can be set up`` () =
    let s = MemorySystem(layout, Profile.Qemu72)
    let device = VirtioDevice(s, s.Space "memory", 1, 0UL)
    device.SetupQueue(0, 1024, 0x1000UL, 0x6000UL, 0x8000UL)
    Assert.Empty(device.Errors)
    Assert.True(device.Queues.[0].Ready)

    Assert.Throws<ArgumentOutOfRangeException>(fun () -> device.SetupQueue(0, 2048, 0x1000UL, 0x6000UL, 0x8000UL))
    |> ignore

/// virtio_init_region_cache: setting a queue's rings again replaces its caches, the old ones are
/// released (call_rcu of the old VRingMemoryRegionCaches): after a reset nothing stays referenced.
[<Fact>]
let ``setting up a queue again releases the caches of the first setup`` () =
    let s, device, _ = deviceWith 0UL VirtioFault.None 4
    device.SetupQueue(0, 4, 0x11000UL, 0x12000UL, 0x13000UL)
    Assert.Empty(device.Errors)
    device.Reset()
    refCountsAtBaseline s

/// virtio_reset: signalled_used_valid = false, so the first notification after a reset is raised
/// whatever used_event says (virtio_split_should_notify: !v).
[<Fact>]
let ``after a reset the first notification is raised whatever used_event says`` () =
    let _, device, driver = deviceWith eventIdx VirtioFault.None 4
    let vq = device.Queues.[0]

    for e in popWritable device driver [ 0us ] do
        device.Push(vq, e, 0u)

    Assert.True(device.Notify vq)
    device.Reset()
    device.DriverOk()
    driver.ClearRings true
    device.SetupQueue(0, 4, descAddr, availAddr, usedAddr)
    driver.SetUsedEvent 5us // the driver wants an interrupt only once used idx passes 5

    for e in popWritable device driver [ 0us ] do
        device.Push(vq, e, 0u)

    Assert.True(device.Notify vq)
    Assert.Equal(2, device.Interrupts)

/// virtio_reset: notification = true again, so a pop after a reset publishes avail_event even if
/// notifications were disabled before (vring_set_avail_event returns early only when they are off).
[<Fact>]
let ``after a reset notifications are enabled again: a pop publishes avail_event`` () =
    let s, device, driver = deviceWith eventIdx VirtioFault.None 4
    let vq = device.Queues.[0]
    device.SetNotification(vq, false)
    device.Reset()
    device.DriverOk()
    driver.ClearRings true
    device.SetupQueue(0, 4, descAddr, availAddr, usedAddr)
    popWritable device driver [ 0us ] |> ignore
    Assert.Equal(1us, availEvent s 4)

/// virtqueue_split_pop: with EVENT_IDX each pop writes avail_event = last_avail_idx (vring_set_avail_event).
[<Fact>]
let ``with EVENT_IDX every pop writes avail_event = last_avail_idx`` () =
    let s, device, driver = deviceWith eventIdx VirtioFault.None 4
    popWritable device driver [ 0us; 1us ] |> ignore
    Assert.Equal(2us, availEvent s 4)
    Assert.Equal(2us, device.Queues.[0].LastAvailIdx)

/// virtqueue_split_pop: an indirect table of len bytes has len / 16 descriptors (max); a next at or past
/// max is virtio_error "Desc next is %u" (virtqueue_split_read_next_desc), and what was mapped is undone.
[<Fact>]
let ``a next past the end of an indirect table is "Desc next is n"`` () =
    let s, device, driver = deviceWith 0UL VirtioFault.None 4
    let table = 0x4000UL
    driver.WriteDescriptor(0, VringDesc(table, 32u, VirtioConstants.DescFlagIndirect, 0us))
    driver.WriteDescriptor(table, 0, VringDesc(0x5000UL, 16u, VirtioConstants.DescFlagNext, 2us))
    driver.WriteDescriptor(table, 1, VringDesc(0x5100UL, 16u, 0us, 0us))
    driver.Publish [ 0us ]
    let popped = device.Pop device.Queues.[0]
    Assert.Null(popped.Element)
    Assert.Equal("Desc next is 2", popped.Error)
    Assert.Empty(s.LiveMappings)

/// The NoLoopDetection variant (a QEMU without the "Looped descriptor" check) still pops every chain that
/// does not loop: here a queue of one entry and its one descriptor.
[<Fact>]
let ``without loop detection a chain of max descriptors still pops`` () =
    let _, device, driver = deviceWith 0UL VirtioFault.NoLoopDetection 1
    driver.WriteDescriptor(0, writable 0x8000UL 16u)
    driver.Publish [ 0us ]
    let popped = device.Pop device.Queues.[0]
    Assert.Null(popped.Error)
    Assert.Equal(0u, popped.Element.Head)

/// virtqueue_map_desc: a descriptor that crosses from one RAM region into the next becomes two pieces, the
/// second starting where the first ended (elem->in_addr), and the bytes written land there.
[<Fact>]
let ``a descriptor crossing two RAM regions is mapped as two consecutive pieces`` () =
    let s, device, driver = deviceWith 0UL VirtioFault.None 4
    let vq = device.Queues.[0]
    driver.WriteDescriptor(0, writable 0xfff0UL 32u)
    driver.Publish [ 0us ]
    let e = (device.Pop vq).Element
    Assert.Equal<(uint64 * uint64) list>([ 0xfff0UL, 16UL; 0x10000UL, 16UL ], [ for p in e.In -> p.Addr, p.Length ])
    s.WriteMapped(e.In.[1].Mapping, 0UL, ReadOnlySpan [| 0xabuy; 0xcduy |])
    device.Push(vq, e, 32u)
    Assert.Equal(0xcdabus, load16 s 0x10000UL)

/// virtqueue_fill: on a broken device (virtio_device_disabled) the element is unmapped but no used element
/// is written, and virtqueue_flush only lowers inuse: the guest sees nothing.
[<Fact>]
let ``a push on a broken device unmaps the element and writes nothing to the used ring`` () =
    let s, device, driver = deviceWith 0UL VirtioFault.None 4
    let vq = device.Queues.[0]
    let e = (popWritable device driver [ 2us ]).Head
    device.VirtioError "broken by the test"
    device.Push(vq, e, 16u)
    Assert.Empty(s.LiveMappings)
    Assert.Equal(struct (0u, 0u), driver.UsedElement 0)
    Assert.Equal(0us, driver.UsedIdx())
    Assert.Equal(0, vq.InUse)

/// R5: virtio_reset leaves elements in flight mapped, and the device may push them afterwards; with the
/// rings gone (vring.used = 0) virtqueue_split_fill and virtqueue_split_flush return at once: the element is
/// unmapped, nothing is written to guest memory, and inuse is not lowered.
[<Fact>]
let ``an element popped before a reset and pushed after it writes nothing`` () =
    let s, device, driver = deviceWith 0UL VirtioFault.None 4
    let vq = device.Queues.[0]
    let e = (popWritable device driver [ 1us ]).Head
    device.Reset()
    let low = guestBytes s 0UL 16
    device.Push(vq, e, 16u)
    Assert.Empty(s.LiveMappings)
    Assert.Equal<byte[]>(low, guestBytes s 0UL 16)
    Assert.Equal<RingWrite list>([ RingWrite("reset", -1, 0UL) ], List.ofSeq device.RingWrites)
    Assert.Equal((0us, 0), (vq.UsedIdx, vq.InUse))

/// virtqueue_fill(elem, len, idx) writes used->ring[(used_idx + idx) % num]; virtqueue_flush(count)
/// then publishes them all.
[<Fact>]
let ``fills at idx 0 and 1 then one flush publish both elements in order`` () =
    let _, device, driver = deviceWith 0UL VirtioFault.None 4
    let vq = device.Queues.[0]

    match popWritable device driver [ 2us; 3us ] with
    | [ a; b ] ->
        device.Fill(vq, a, 10u, 0)
        device.Fill(vq, b, 12u, 1)
    | other -> failwithf "expected two elements, got %d" other.Length

    device.Flush(vq, 2)
    Assert.Equal<(uint32 * uint32) list>([ 2u, 10u; 3u, 12u ], [ for struct (i, l) in driver.CollectUsed() -> i, l ])

/// The ring-write journal records what the device wrote to the used ring, in order: the element (its 8
/// bytes, id then len, as a little-endian u64) at its slot, then the index.
[<Fact>]
let ``the ring-write journal records the used element's bytes and then the index`` () =
    let s, device, driver = deviceWith 0UL VirtioFault.None 4
    let vq = device.Queues.[0]
    let e = (popWritable device driver [ 3us ]).Head
    device.Push(vq, e, 7u)
    let bytes = Array.zeroCreate<byte> 8
    s.Read(s.Space "memory", VirtioConstants.UsedElemAddr(usedAddr, 0), Span bytes)
    let written = BinaryPrimitives.ReadUInt64LittleEndian(ReadOnlySpan bytes)
    Assert.Equal((7UL <<< 32) ||| 3UL, written)
    Assert.Equal<RingWrite list>([ RingWrite("elem", 0, written); RingWrite("idx", -1, 1UL) ], List.ofSeq device.RingWrites)

/// Pops and pushes n elements, one at a time, without notifying.
let private pushMany (device: VirtioDevice) (driver: SplitRingDriver) n =
    let vq = device.Queues.[0]

    for _ in 1..n do
        let head = driver.AvailIdx % 4us
        driver.WriteDescriptor(int head, writable 0x8000UL 16u)
        driver.Publish [ head ]
        device.Push(vq, (device.Pop vq).Element, 0u)

/// virtio_split_should_notify with EVENT_IDX: after an interrupt at used idx 1, two more used elements
/// (idx 3) with used_event 5 raise none (vring_need_event(5, 3, 1) is false and signalled_used stays valid:
/// virtqueue_split_flush invalidates it only when (int16_t)(new - signalled_used) < (uint16_t)(new - old)).
[<Fact>]
let ``with EVENT_IDX a used_event ahead of the used index suppresses the interrupt`` () =
    let _, device, driver = deviceWith eventIdx VirtioFault.None 4
    let vq = device.Queues.[0]
    pushMany device driver 1
    Assert.True(device.Notify vq)
    driver.SetUsedEvent 5us
    pushMany device driver 2
    Assert.False(device.Notify vq)
    Assert.Equal(1, device.Interrupts)

/// virtqueue_split_flush: signalled_used stays valid while the used index is less than 2^15 past it
/// ((int16_t)(new - signalled_used) < (uint16_t)(new - old) is false) and is forgotten once it is 2^15 past
/// (signalled_used_valid = false). After an interrupt at used idx 1 and a used_event equal to the new used
/// index: at 32768 none is raised (vring_need_event(32768, 32768, 1) is false); at 32769 the device has
/// forgotten signalled_used and interrupts whatever used_event says.
[<Theory>]
[<InlineData(32767, false)>]
[<InlineData(32768, true)>]
let ``signalled_used is kept while the used index is less than 2^15 past it, then forgotten`` (pushesAfter: int, interrupts: bool) =
    let _, device, driver = deviceWith eventIdx VirtioFault.None 4
    let vq = device.Queues.[0]
    pushMany device driver 1
    Assert.True(device.Notify vq)
    pushMany device driver pushesAfter
    let usedIdx = uint16 (1 + pushesAfter)
    Assert.Equal(usedIdx, vq.UsedIdx)
    driver.SetUsedEvent usedIdx
    Assert.Equal(interrupts, device.Notify vq)
    Assert.Equal((if interrupts then 2 else 1), device.Interrupts)

/// virtio_split_should_notify: with NOTIFY_ON_EMPTY a device with nothing in use and an empty queue
/// interrupts even when the driver set VRING_AVAIL_F_NO_INTERRUPT; with an element still in use it does not.
[<Fact>]
let ``NOTIFY_ON_EMPTY interrupts despite NO_INTERRUPT only once nothing is in use and the queue is empty`` () =
    let _, device, driver =
        deviceWith (bit VirtioConstants.FeatureNotifyOnEmpty) VirtioFault.None 4

    let vq = device.Queues.[0]
    driver.SetAvailFlags VirtioConstants.AvailFlagNoInterrupt

    match popWritable device driver [ 0us; 1us ] with
    | [ a; b ] ->
        device.Push(vq, a, 0u)
        Assert.False(device.Notify vq)
        device.Push(vq, b, 0u)
        Assert.True(device.Notify vq)
    | other -> failwithf "expected two elements, got %d" other.Length

    Assert.Equal(1, device.Interrupts)

/// virtio_notify raises the interrupt only on a working device whose driver wants one; Notify returns
/// whether it did, so its answer always matches the interrupt count.
[<Fact>]
let ``Notify returns whether it raised an interrupt`` () =
    let _, device, driver = deviceWith 0UL VirtioFault.None 4
    let vq = device.Queues.[0]

    for e in popWritable device driver [ 0us ] do
        device.Push(vq, e, 0u)

    Assert.True(device.Notify vq)
    Assert.Equal(1, device.Interrupts)
    device.VirtioError "broken by the test"
    Assert.False(device.Notify vq)
    Assert.Equal(1, device.Interrupts)

/// virtio_queue_set_notification: a queue whose rings were never set returns before touching memory.
[<Fact>]
let ``set_notification on a queue that was never set up writes nothing`` () =
    let s, device, _ = deviceWith 0UL VirtioFault.None 4
    s.Write(s.Space "memory", 0UL, ReadOnlySpan [| 0uy; 0uy |])
    device.SetNotification(device.Queues.[1], false)
    Assert.Equal(0us, load16 s 0UL)
    Assert.Empty(device.RingWrites)

/// virtio_queue_empty (split): a queue whose available ring address is 0 is not ready and counts as empty,
/// so nothing is popped even if memory at 0 looks like a published head.
[<Fact>]
let ``a queue whose available ring is at 0 is empty`` () =
    let s = MemorySystem(layout, Profile.Qemu72)
    let mem = s.Space "memory"
    let device = VirtioDevice(s, mem, 1, 0UL)
    let driver = SplitRingDriver(s, mem, 4, descAddr, 0UL, usedAddr)
    driver.ClearRings false
    device.SetupQueue(0, 4, descAddr, 0UL, usedAddr)
    driver.WriteDescriptor(0, writable 0x8000UL 16u)
    driver.Publish [ 0us ]
    Assert.False(device.Queues.[0].Ready)
    Assert.Equal(PopResult.Empty, device.Pop device.Queues.[0])
    Assert.Empty(device.Errors)

/// VIRTIO 1.2 §2.7.6: the available ring is flags (u16), idx (u16), then ring[num] (u16 each).
[<Fact>]
let ``the driver publishes the available index at avail + 2 and the heads from avail + 4`` () =
    let s, _, driver = deviceWith 0UL VirtioFault.None 4
    driver.Publish [ 3us; 1us ]
    Assert.Equal(2us, load16 s (availAddr + 2UL))
    Assert.Equal(3us, load16 s (availAddr + 4UL))
    Assert.Equal(1us, load16 s (availAddr + 6UL))

/// The legacy layout (VIRTIO 1.2 §2.7.2): the used ring starts at the next 4096 boundary after the
/// available ring (flags, idx, ring[num], used_event).
[<Theory>]
[<InlineData(0x10000UL, 256, 0x12000UL)>] // 4096 + 518 bytes from 0x10000: the second page after
[<InlineData(0x0UL, 1024, 0x5000UL)>] // 16384 + 2054 bytes
[<InlineData(0x0UL, 16, 0x1000UL)>] // 256 + 38 bytes
let ``the legacy used ring is 4096-aligned after the available ring`` (desc: uint64, size: int, used: uint64) =
    Assert.Equal(used, VirtioConstants.LegacyUsed(desc, size))

// ------------------------------------------------------------------ virtio-blk (hw/block/virtio-blk.c)

let private readable (addr: uint64) (len: uint32) (next: uint16 option) =
    match next with
    | Some n -> VringDesc(addr, len, VirtioConstants.DescFlagNext, n)
    | None -> VringDesc(addr, len, 0us, 0us)

let private writableThen (addr: uint64) (len: uint32) (next: uint16 option) =
    match next with
    | Some n -> VringDesc(addr, len, VirtioConstants.DescFlagWrite ||| VirtioConstants.DescFlagNext, n)
    | None -> writable addr len

/// A virtio-blk request header (struct virtio_blk_outhdr: type u32, ioprio u32, sector u64).
let private header (requestType: uint32) (sector: uint64) =
    let b = Array.zeroCreate<byte> 16
    BinaryPrimitives.WriteUInt32LittleEndian(Span(b, 0, 4), requestType)
    BinaryPrimitives.WriteUInt64LittleEndian(Span(b, 8, 8), sector)
    b

/// A virtio-blk device with the given features and serial over a 64-sector disk, its queue of 4 set up with
/// its descriptor table and available ring at the given addresses (the used ring at usedAddr), and its driver.
let private blkAt profile (features: uint64) serial (desc: uint64) (avail: uint64) =
    let s = MemorySystem(layout, profile)
    let mem = s.Space "memory"
    let device = VirtioDevice(s, mem, 1, features)
    let driver = SplitRingDriver(s, mem, 4, desc, avail, usedAddr)
    driver.ClearRings((features &&& eventIdx) <> 0UL)
    device.SetupQueue(0, 4, desc, avail, usedAddr)
    s, VirtioBlk(device, Array.zeroCreate (64 * VirtioBlk.SectorSize), serial), driver

/// A virtio-blk device without features, its queue of 4 at descAddr/availAddr/usedAddr, and its driver.
let private blkWith profile serial =
    blkAt profile 0UL serial descAddr availAddr

/// virtio_blk_handle_request, GET_ID: MIN(strlen(serial) + 1, MIN(in size, VIRTIO_BLK_ID_BYTES)) bytes of
/// the serial are written: a serial longer than 20 bytes is cut at 20 (without NUL), and the rest of a
/// larger buffer is left as it was.
[<Fact>]
let ``GET_ID writes at most VIRTIO_BLK_ID_BYTES (20) of a longer serial`` () =
    let serial = "0123456789abcdefghijKLMN"
    let s, blk, driver = blkWith Profile.Qemu72 serial
    let mem = s.Space "memory"
    s.Write(mem, 0x8000UL, ReadOnlySpan(header VirtioBlk.TypeGetId 0UL))
    s.Write(mem, 0x9000UL, ReadOnlySpan(Array.create 64 0xeeuy))
    driver.WriteDescriptor(0, readable 0x8000UL 16u (Some 1us))
    driver.WriteDescriptor(1, writableThen 0x9000UL 64u (Some 2us))
    driver.WriteDescriptor(2, writable 0xa000UL 1u)
    driver.Publish [ 0us ]
    blk.Kick()
    Assert.Equal<byte[]>(Text.Encoding.ASCII.GetBytes(serial.Substring(0, 20)), guestBytes s 0x9000UL 20)
    Assert.Equal<byte[]>(Array.create 44 0xeeuy, guestBytes s (0x9000UL + 20UL) 44)
    Assert.Equal<byte[]>([| VirtioBlk.StatusOk |], guestBytes s 0xa000UL 1)
    Assert.Equal(struct (0u, 65u), driver.UsedElement 0)

/// VBLK-4 (QEMU 9.0+): a zone report whose in buffer holds exactly the status byte, the report header and
/// one zone descriptor (129 bytes) is big enough; without VIRTIO_BLK_F_ZONED it completes with UNSUPP and
/// the device keeps working (check_zoned_request).
[<Fact>]
let ``a zone report with exactly the minimum in buffer completes UNSUPP without breaking the device`` () =
    let s, blk, driver = blkWith Profile.Qemu92 ""
    s.Write(s.Space "memory", 0x8000UL, ReadOnlySpan(header VirtioBlk.TypeZoneReport 0UL))
    driver.WriteDescriptor(0, readable 0x8000UL 16u (Some 1us))
    driver.WriteDescriptor(1, writableThen 0x9000UL 128u (Some 2us))
    driver.WriteDescriptor(2, writable 0xa000UL 1u)
    driver.Publish [ 0us ]
    blk.Kick()
    Assert.False(blk.Device.Broken)
    Assert.Empty(blk.Device.Errors)
    Assert.Equal<byte[]>([| VirtioBlk.StatusUnsupp |], guestBytes s 0xa000UL 1)
    Assert.Equal(struct (0u, 129u), driver.UsedElement 0)

/// Any framing is allowed (VIRTIO 1.2 §2.6.4): the request header may be split over two descriptors, the
/// second also carrying the data (iov_to_buf reads the 16 header bytes across both, the data follows).
[<Fact>]
let ``a write whose header is split over two descriptors, the second with the data, writes the disk`` () =
    let s, blk, driver = blkWith Profile.Qemu72 ""
    let mem = s.Space "memory"
    let h = header VirtioBlk.TypeOut 1UL
    let data = Array.init 512 (fun i -> byte (i % 251))
    s.Write(mem, 0x8000UL, ReadOnlySpan(h, 0, 8))
    s.Write(mem, 0x9000UL, ReadOnlySpan(Array.append h.[8..] data))
    driver.WriteDescriptor(0, readable 0x8000UL 8u (Some 1us))
    driver.WriteDescriptor(1, readable 0x9000UL (8u + 512u) (Some 2us))
    driver.WriteDescriptor(2, writable 0xa000UL 1u)
    driver.Publish [ 0us ]
    blk.Kick()
    blk.CompleteIo()
    Assert.Empty(blk.Device.Errors)
    Assert.Equal<byte[]>(data, blk.Disk.[512..1023])
    Assert.Equal<byte[]>([| VirtioBlk.StatusOk |], guestBytes s 0xa000UL 1)
    Assert.Equal(struct (0u, 1u), driver.UsedElement 0)

// ------------------------------------------------------------------ ring caches over ROM (address_space_cache_init)

/// RAM at 0, and an 8 KiB ROM seen through two adjacent aliases at 0x20000 and 0x21000 (the second
/// nonvolatile, so flatview_simplify keeps them as two ranges of the one ROM, contiguous in it: can_merge).
let private romLayout =
    let rom = Spec.Region("rom", RegionKind.Rom, u128 0x2000UL)

    Spec.OneSpace(
        [ Spec.Region("ram", RegionKind.Ram, u128 0x10000UL)
          Spec.Copy(Spec.Region("rom-lo", RegionKind.Alias, u128 0x1000UL, 0x20000UL), target = "rom", aliasOffset = 0UL)
          RegionSpec(
              Name = "rom-hi",
              Kind = RegionKind.Alias,
              Size = u128 0x1000UL,
              Addr = 0x21000UL,
              AliasTarget = "rom",
              AliasOffset = 0x1000UL,
              Nonvolatile = true
          ) ],
        detached = [ rom ]
    )

/// Sets up a queue of 4 with its rings at the given addresses over romLayout; the errors it ends in.
let private setupOverRom desc avail used =
    let s = MemorySystem(romLayout, Profile.Qemu72)
    let device = VirtioDevice(s, s.Space "memory", 1, 0UL)
    device.SetupQueue(0, 4, desc, avail, used)
    s, device

/// RC-1 with memory_access_is_direct: a ring the device only reads (descriptor table, available ring) is
/// cached for reading, which is direct for ROM, so flatview_extend_translation carries the cache on into
/// the next range of the same ROM; the used ring is cached for writing, not direct for ROM, and stops at
/// the end of its range: "Cannot map used".
[<Theory>]
[<InlineData("desc")>]
[<InlineData("avail")>]
[<InlineData("used")>]
let ``a ring in ROM across two ranges of it is cached whole for reading, cut for writing`` (ring: string) =
    let across = 0x20ff8UL // 8 bytes before the second range; every ring of 4 is longer (12 bytes or more)

    let desc, avail, used =
        match ring with
        | "desc" -> across, 0x2000UL, 0x3000UL
        | "avail" -> 0x1000UL, across, 0x3000UL
        | _ -> 0x1000UL, 0x2000UL, across

    let _, device = setupOverRom desc avail used
    let expected = if ring = "used" then [ "Cannot map used" ] else []
    Assert.Equal<string list>(expected, List.ofSeq device.Errors)

/// virtqueue_split_pop: an indirect table is cached for reading (address_space_cache_init with
/// is_write false); in ROM across two ranges of it the cache covers the whole table, so the pop goes on to
/// read the table's first descriptor instead of failing with "Cannot map indirect buffer".
[<Fact>]
let ``an indirect table in ROM across two ranges of it is cached whole`` () =
    let s, device = setupOverRom descAddr availAddr usedAddr
    let driver = SplitRingDriver(s, s.Space "memory", 4, descAddr, availAddr, usedAddr)
    driver.ClearRings false
    driver.WriteDescriptor(0, VringDesc(0x20ff0UL, 32u, VirtioConstants.DescFlagIndirect, 0us))
    driver.Publish [ 0us ]
    let popped = device.Pop device.Queues.[0]
    Assert.NotEqual<string>("Cannot map indirect buffer", popped.Error)
    Assert.True(device.DescriptorReads >= 2, sprintf "%d descriptors read" device.DescriptorReads)

/// virtio_queue_notify runs the handler of any queue with a descriptor table, even one whose available ring
/// is at 0: virtio_blk_handle_vq turns notifications off and on again around its (empty) pops, and
/// virtio_queue_set_notification writes the used ring's flags (it returns early only without vring.desc).
[<Fact>]
let ``a kick on a queue whose available ring is at 0 turns notifications off and on in the used flags`` () =
    let s, blk, _ = blkAt Profile.Qemu72 0UL "" descAddr 0UL
    s.Write(s.Space "memory", usedAddr, ReadOnlySpan [| byte VirtioConstants.UsedFlagNoNotify; 0uy |])
    blk.Kick()
    Assert.Equal(0us, load16 s usedAddr)

    Assert.Equal<string list>([ "flags"; "flags" ], [ for w in blk.Device.RingWrites -> w.What ])

    Assert.Equal(0us, blk.Device.Queues.[0].LastAvailIdx)
    Assert.Empty(blk.Device.Errors)

/// The same with EVENT_IDX: turning notifications on again publishes avail_event = the available index,
/// read from the available ring at 0 (vring_avail_idx), whatever is there.
[<Fact>]
let ``with EVENT_IDX a kick on a queue whose available ring is at 0 writes avail_event from address 2`` () =
    let s, blk, _ = blkAt Profile.Qemu72 eventIdx "" descAddr 0UL
    s.Write(s.Space "memory", 2UL, ReadOnlySpan [| 0x34uy; 0x12uy |])
    blk.Kick()
    Assert.Equal(0x1234us, availEvent s 4)
    Assert.Equal(0us, blk.Device.Queues.[0].LastAvailIdx)

/// virtio_queue_notify ignores a kick on a queue whose descriptor table is at 0: nothing is popped even
/// though the available ring holds a published head.
[<Fact>]
let ``a kick on a queue whose descriptor table is at 0 is ignored`` () =
    let s, blk, driver = blkAt Profile.Qemu72 0UL "" 0UL availAddr
    s.Write(s.Space "memory", 0x8000UL, ReadOnlySpan(header VirtioBlk.TypeGetId 0UL))
    driver.WriteDescriptor(0, readable 0x8000UL 16u (Some 1us))
    driver.WriteDescriptor(1, writable 0xa000UL 1u)
    driver.Publish [ 0us ]
    blk.Kick()
    Assert.Equal(0us, blk.Device.Queues.[0].LastAvailIdx)
    Assert.Equal(0us, driver.UsedIdx())
    Assert.Empty(blk.Device.RingWrites)

/// virtio_init_region_cache keeps no ring caches for a queue whose descriptor table is at 0 and reports nothing;
/// vring_avail_idx then reads 0, so even a direct pop finds the queue empty, whatever the available ring says,
/// and breaks nothing.
[<Fact>]
let ``a queue whose descriptor table is at 0 has no ring caches and pops nothing`` () =
    let s, blk, driver = blkAt Profile.Qemu72 0UL "" 0UL availAddr
    let vq = blk.Device.Queues.[0]
    s.Write(s.Space "memory", 0x8000UL, ReadOnlySpan(header VirtioBlk.TypeGetId 0UL))
    driver.WriteDescriptor(0, readable 0x8000UL 16u (Some 1us))
    driver.WriteDescriptor(1, writable 0xa000UL 1u)
    driver.Publish [ 0us ]
    Assert.Equal(1us, load16 s (availAddr + 2UL))
    Assert.True(blk.Device.QueueEmpty vq)
    Assert.Null(blk.Device.Pop(vq).Element)
    Assert.Equal(0us, vq.LastAvailIdx)
    Assert.Equal(0us, vq.ShadowAvailIdx)
    Assert.False blk.Device.Broken
    Assert.Empty blk.Device.Errors

/// The same rule once the queue is not empty by its shadow index: a queue popped once of two published heads
/// and then set up again with its table at 0 (virtio_queue_set_addr leaves the indices alone) pops again, and
/// vring_avail_ring reads head 0 without caches, so the pop stops at "Region caches not initialized", not at
/// the head the ring really holds (7, past the queue).
[<Fact>]
let ``without ring caches the available ring reads head 0`` () =
    let s, blk, driver = blkWith Profile.Qemu72 ""
    let vq = blk.Device.Queues.[0]
    s.Write(s.Space "memory", 0x8000UL, ReadOnlySpan(header VirtioBlk.TypeGetId 0UL))
    driver.WriteDescriptor(0, readable 0x8000UL 16u (Some 1us))
    driver.WriteDescriptor(1, writable 0xa000UL 1u)
    driver.Publish [ 0us; 7us ]
    Assert.NotNull(blk.Device.Pop(vq).Element)
    blk.Device.SetupQueue(0, 4, 0UL, availAddr, usedAddr)
    Assert.Null(blk.Device.Pop(vq).Element)
    Assert.Equal<string list>([ "Region caches not initialized" ], List.ofSeq blk.Device.Errors)

/// vring_avail_flags reads 0 without ring caches too: a queue set up again with its table at 0 interrupts
/// although the driver's available ring says VRING_AVAIL_F_NO_INTERRUPT (virtio_should_notify, no EVENT_IDX).
[<Fact>]
let ``without ring caches the available flags read 0, so NO_INTERRUPT is not seen`` () =
    let _, blk, driver = blkWith Profile.Qemu72 ""
    let vq = blk.Device.Queues.[0]
    driver.SetAvailFlags(uint16 VirtioConstants.AvailFlagNoInterrupt)
    Assert.False(blk.Device.Notify vq)
    blk.Device.SetupQueue(0, 4, 0UL, availAddr, usedAddr)
    Assert.True(blk.Device.Notify vq)
