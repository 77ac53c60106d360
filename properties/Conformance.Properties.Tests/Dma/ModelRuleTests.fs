/// Single QEMU rules pinned down by example, each with its source (ids such as M1 or C2 are headings in
/// docs/qemu-rules.md).
module Conformance.Properties.Tests.ModelRuleTests

open System
open Xunit
open Conformance.Model
open Conformance.Properties.LayoutBuilding
open Conformance.Properties.Oracle

let private layout budget =
    Spec.OneSpace(
        [ Spec.Region("ram", RegionKind.Ram, u128 0x10000UL)
          Spec.Region("dev", RegionKind.Io, u128 0x10000UL, 0x100000UL)
          Spec.Region("rom", RegionKind.Rom, u128 0x2000UL, 0x200000UL) ],
        budget
    )

let private system profile = MemorySystem(layout 4096UL, profile)

[<Fact>]
let ``Qemu72: a second bounce mapping fails until the first is unmapped (physmem.c:address_space_map, bounce.in_use)`` () =
    let s = system Profile.Qemu72
    let mem = s.Space "memory"
    let first = s.Map(mem, 0x100000UL, 16UL, true)
    Assert.True first.Succeeded
    let second = s.Map(mem, 0x100100UL, 16UL, false)
    Assert.Equal(MapFailure.NoBounceSpace, second.Failure)
    Assert.Equal(0UL, second.Length)
    s.Unmap(first.Mapping, 0UL) |> ignore
    Assert.True(s.Map(mem, 0x100100UL, 16UL, false).Succeeded)

[<Fact>]
let ``Qemu72: a bounce mapping is at most one page (TARGET_PAGE_SIZE)`` () =
    let s = system Profile.Qemu72
    let r = s.Map(s.Space "memory", 0x100000UL, 10000UL, false)
    Assert.Equal(4096UL, r.Length)

[<Fact>]
let ``Qemu92: with 4000 of 4096 bytes in use a 1000-byte request gets 96 (system/physmem.c BM-1)`` () =
    let s = system Profile.Qemu92
    let mem = s.Space "memory"
    Assert.Equal(4000UL, s.Map(mem, 0x100000UL, 4000UL, true).Length)
    let partial = s.Map(mem, 0x102000UL, 1000UL, true)
    Assert.Equal(96UL, partial.Length)
    Assert.Equal(MapFailure.NoBounceSpace, s.Map(mem, 0x103000UL, 1UL, true).Failure)

[<Fact>]
let ``a zero-length map returns NULL and takes nothing (M1)`` () =
    let s = system Profile.Qemu72
    let r = s.Map(s.Space "memory", 0x100UL, 0UL, true)
    Assert.Equal(MapFailure.ZeroLength, r.Failure)
    Assert.All(s.Owners, fun o -> Assert.Equal(Owner.Baseline, o.RefCount))
    Assert.False s.GlobalBounceInUse

[<Fact>]
let ``unassigned memory bounces and reads as zeros (M7, unassigned_mem_read)`` () =
    let s = system Profile.Qemu72
    let r = s.Map(s.Space "memory", 0x5000_0000UL, 8UL, false)
    Assert.Equal(MappingKind.Bounce, r.Mapping.Kind)
    let bytes = Array.zeroCreate<byte> 8
    s.ReadMapped(r.Mapping, 0UL, Span bytes)
    Assert.Equal<byte[]>(Array.zeroCreate 8, bytes)

[<Fact>]
let ``a write mapping of ROM bounces and its write-back is dropped (memory_access_is_direct)`` () =
    let s = system Profile.Qemu72
    let mem = s.Space "memory"
    let before = Array.zeroCreate<byte> 4
    s.Read(mem, 0x200000UL, Span before)
    let r = s.Map(mem, 0x200000UL, 4UL, true)
    Assert.Equal(MappingKind.Bounce, r.Mapping.Kind)
    s.WriteMapped(r.Mapping, 0UL, ReadOnlySpan [| 1uy; 2uy; 3uy; 4uy |])
    s.Unmap(r.Mapping, 4UL) |> ignore
    let after = Array.zeroCreate<byte> 4
    s.Read(mem, 0x200000UL, Span after)
    Assert.Equal<byte[]>(before, after)

[<Fact>]
let ``a ROM read mapping is direct and has no page limit`` () =
    let s = system Profile.Qemu72
    let r = s.Map(s.Space "memory", 0x200000UL, 0x2000UL, false)
    Assert.Equal(MappingKind.Direct, r.Mapping.Kind)
    Assert.Equal(0x2000UL, r.Length)

[<Fact>]
let ``map clients: woken at once when space is free, else at the bounce unmap; they run only from the main loop (C1, C2, C3)`` () =
    let s = system Profile.Qemu72
    let mem = s.Space "memory"
    Assert.Equal<string list>([ "early" ], s.RegisterMapClient(mem, "early") |> List.ofSeq)
    let held = s.Map(mem, 0x100000UL, 4UL, true)
    Assert.Empty(s.RegisterMapClient(mem, "waiter"))
    Assert.Equal<string list>([ "waiter" ], (s.Unmap(held.Mapping, 0UL)).ClientsScheduled |> List.ofSeq)
    Assert.Equal<string list>([ "early"; "waiter" ], s.RunBottomHalves() |> List.ofSeq)
    Assert.Empty(s.RunBottomHalves())

[<Fact>]
let ``write bounce buffers: never produced in Qemu72, zero-filled in Qemu92`` () =
    for profile, origin in
        [ Profile.Qemu72, ByteOrigin.NeverProduced
          Profile.Qemu92, ByteOrigin.ZeroFill ] do
        let s = system profile
        let r = s.Map(s.Space "memory", 0x100000UL, 8UL, true)
        Assert.All(r.Mapping.Bounce.Produced, fun o -> Assert.Equal(origin, o))
        let u = s.Unmap(r.Mapping, 8UL)
        Assert.Equal(8, u.NeverProducedBytesWrittenBack + u.ZeroFillBytesWrittenBack)

[<Fact>]
let ``direct write unmap dirties access_len bytes, not the mapped length (address_space_unmap U3)`` () =
    let s = system Profile.Qemu72
    let r = s.Map(s.Space "memory", 0x0UL, 0x3000UL, true)
    s.Unmap(r.Mapping, 0x1001UL) |> ignore
    Assert.Equal<uint64 list>([ 0UL; 1UL ], s.Dirty.Pages(DirtyClient.Migration) |> Seq.sort |> List.ofSeq)
    Assert.Empty(s.Dirty.Pages(DirtyClient.Vga))

[<Fact>]
let ``unmapping twice is refused the second time`` () =
    let s = system Profile.Qemu72
    let r = s.Map(s.Space "memory", 0x0UL, 16UL, true)
    Assert.True((s.Unmap(r.Mapping, 16UL)).Performed)
    Assert.False((s.Unmap(r.Mapping, 16UL)).Performed)
    Assert.All(s.Owners, fun o -> Assert.Equal(Owner.Baseline, o.RefCount))

[<Fact>]
let ``virtqueue_rewind gives back up to inuse elements without unmapping them (hw/virtio/virtio.c:virtqueue_rewind)`` () =
    let s = system Profile.Qemu72
    let mem = s.Space "memory"
    let device = Virtio.VirtioDevice(s, mem, 1, 0UL)
    device.SetupQueue(0, 4, 0x1000UL, 0x2000UL, 0x3000UL)
    let driver = Virtio.SplitRingDriver(s, mem, 4, 0x1000UL, 0x2000UL, 0x3000UL)
    driver.ClearRings false
    driver.WriteDescriptor(0, Virtio.VringDesc(0x4000UL, 16u, Virtio.VirtioConstants.DescFlagWrite, 0us))
    driver.WriteDescriptor(1, Virtio.VringDesc(0x5000UL, 16u, Virtio.VirtioConstants.DescFlagWrite, 0us))
    driver.Publish [ 0us; 1us ]
    let vq = device.Queues.[0]
    device.Pop vq |> ignore
    device.Pop vq |> ignore
    Assert.Equal(2, vq.InUse)
    Assert.False(device.Rewind(vq, 3))
    Assert.Equal((2, 2us), (vq.InUse, vq.LastAvailIdx))
    Assert.True(device.Rewind(vq, 2))
    Assert.Equal((0, 0us), (vq.InUse, vq.LastAvailIdx))
    Assert.Equal(2, s.LiveMappings.Count) // the caller still owns the elements' mappings
    Assert.Equal(0u, (device.Pop vq).Element.Head)

/// access_with_adjusted_size (softmmu/memory.c): an access wider than the device's callbacks
/// (impl.max_access_size) reaches a little-endian device as consecutive callbacks, each carrying its own
/// bytes of the value, lowest first; a read puts the pieces back together the same way.
[<Fact>]
let ``an access wider than the device's callbacks reaches it in pieces, each with its own bytes (access_with_adjusted_size)`` () =
    let layout =
        Spec.OneSpace
            [ Spec.Copy(Spec.Region("bytewise", RegionKind.Io, u128 0x1000UL, 0x100000UL), access = AccessRules(4u, 1u, 1u, false))
              Spec.Copy(Spec.Region("halves", RegionKind.Io, u128 0x1000UL, 0x110000UL), access = AccessRules(8u, 2u, 2u, false)) ]

    let s = MemorySystem(layout, Profile.Qemu72)

    let mem = s.Space "memory"
    let data = [| 0x11uy; 0x22uy; 0x33uy; 0x44uy; 0x55uy; 0x66uy; 0x77uy; 0x88uy |]
    s.Write(mem, 0x100000UL, ReadOnlySpan(data, 0, 4))
    s.Write(mem, 0x110000UL, ReadOnlySpan data)

    let write region offset size value =
        DeviceAccess(region, MmioAccess(true, offset, size, value))

    Assert.Equal<DeviceAccess list>(
        [ write "bytewise" 0UL 1u 0x11UL
          write "bytewise" 1UL 1u 0x22UL
          write "bytewise" 2UL 1u 0x33UL
          write "bytewise" 3UL 1u 0x44UL
          write "halves" 0UL 2u 0x2211UL
          write "halves" 2UL 2u 0x4433UL
          write "halves" 4UL 2u 0x6655UL
          write "halves" 6UL 2u 0x8877UL ],
        List.ofSeq s.AccessJournal
    )

    let four = Array.zeroCreate<byte> 4
    let eight = Array.zeroCreate<byte> 8
    s.Read(mem, 0x100000UL, Span four)
    s.Read(mem, 0x110000UL, Span eight)
    Assert.Equal<byte[]>(data.[0..3], four)
    Assert.Equal<byte[]>(data, eight)

/// RC-1: a region cache stops at the end of its section whatever the region is (address_space_cache_init
/// cuts the length for MMIO too, where address_space_map does not): an indirect table or a ring that runs
/// out of an MMIO region is short, and virtio fails the device ("Cannot map indirect buffer").
[<Fact>]
let ``a region cache in MMIO that runs past the region's end is cut there (physmem.c:address_space_cache_init, RC-1)`` () =
    let s = system Profile.Qemu72
    let mem = s.Space "memory"
    let cache = s.OpenCache(mem, 0x10ff00UL, 0x200UL, false)
    Assert.Equal("dev", cache.Region.Name)
    Assert.Equal(0x100UL, cache.Length)
    s.CloseCache cache
    // a hole is io_mem_unassigned, whose one section spans the whole address space from 0: a cache there
    // is cut only at 2^64 (address_space_translate_internal's min(section size - addr, len))
    let hole = s.OpenCache(mem, 0xFFFF_FFFF_FFFF_F000UL, 0x2000UL, false)
    Assert.Same(MemoryRegion.Unassigned, hole.Region)
    Assert.Equal(0x1000UL, hole.Length)
    s.CloseCache hole
    // inside the region the whole request is covered, and RAM is cut at its end as before
    let inside = s.OpenCache(mem, 0x100000UL, 0x200UL, false)
    Assert.Equal(0x200UL, inside.Length)
    s.CloseCache inside
    let ram = s.OpenCache(mem, 0xff00UL, 0x200UL, false)
    Assert.Equal(0x100UL, ram.Length)
    s.CloseCache ram

/// R5 for virtio-blk (hw/block/virtio-blk.c:virtio_blk_reset): a reset drains the block layer first, so a
/// request in flight completes — status written, element pushed and unmapped — before the queue is reset;
/// the device then starts over (indices zero, working) and nothing stays mapped.
[<Fact>]
let ``a virtio-blk reset completes the requests in flight before resetting the queue`` () =
    let p = Conformance.Properties.BlkProperties.modelPlacement

    let read =
        Conformance.Properties.BlkProperties.toScenario
            p
            Profile.Qemu72
            [ { Type = Virtio.VirtioBlk.TypeIn
                Sector = 1UL
                Data = [ 0x40000UL, 512u ]
                Status = 0x22000UL
                Payload = Array.zeroCreate 512
                Framing = Conformance.Properties.BlkProperties.Separate } ]

    let ops =
        read.Ops
        |> Seq.map (fun o ->
            match o with
            | :? Scenarios.CompleteIoOp -> Scenarios.VirtioResetOp() :> Scenarios.ScenarioOp
            | o -> o)
        |> Array.ofSeq

    let run =
        Scenarios.ScenarioRunner.Run(Scenarios.Scenario(read.Profile, read.Layout, ops))

    let obs = run.Observe()
    Assert.Equal<(uint32 * uint32) list>([ 0u, 513u ], obs.Virtio.Used |> Seq.map (fun struct (i, l) -> i, l) |> List.ofSeq)
    Assert.Empty(obs.Memory.LiveMappings)
    Assert.False(obs.Virtio.Broken)
    Assert.Equal(0us, obs.Virtio.UsedIdx)
    Assert.Equal(0, obs.Virtio.InUse)
    let status = Array.zeroCreate<byte> 1
    run.System.Read(run.System.Space "memory", 0x22000UL, Span status)
    Assert.Equal(Virtio.VirtioBlk.StatusOk, status.[0])

/// VBLK-4 (QEMU 9.0+, profile Qemu92): a short zone report breaks the device and is still completed with
/// ZONE_INVALID_CMD: the status byte is written, nothing is published, nothing stays mapped.
[<Fact>]
let ``a short zone report is completed with ZONE_INVALID_CMD after breaking the device`` () =
    let scenario =
        Scenarios.ScenarioJson.Parse(IO.File.ReadAllText(Conformance.Properties.Tests.TestSupport.fromRoot "fixtures/findings/F-BLK-3.json"))

    let run = Scenarios.ScenarioRunner.Run scenario
    let obs = run.Observe()
    Assert.True(obs.Virtio.Broken)
    Assert.Empty(obs.Virtio.Used)
    Assert.Empty(obs.Memory.LiveMappings)
    let status = Array.zeroCreate<byte> 1
    run.System.Read(run.System.Space "memory", 0x22000UL, Span status)
    Assert.Equal(Virtio.VirtioBlk.StatusZoneInvalidCmd, status.[0])

/// RC-1: each ring must be covered by one region cache of exactly its size (VIRTIO 1.2 §2.7: descriptor
/// table 16·num bytes; available ring 4 + 2·num, used ring 4 + 8·num, each 2 more with EVENT_IDX). A ring
/// that ends exactly at the end of RAM works; one byte further it is "Cannot map …".
[<Theory>]
[<InlineData("desc", false)>]
[<InlineData("desc", true)>]
[<InlineData("avail", false)>]
[<InlineData("avail", true)>]
[<InlineData("used", false)>]
[<InlineData("used", true)>]
let ``a ring fits its cache exactly, and one byte more does not`` (ring: string, eventIdx: bool) =
    let num = 8
    let ramEnd = 0x100000UL
    let extra = if eventIdx then 2UL else 0UL

    let size =
        match ring with
        | "desc" -> 16UL * uint64 num
        | "avail" -> 4UL + 2UL * uint64 num + extra
        | _ -> 4UL + 8UL * uint64 num + extra

    let run (at: uint64) =
        let desc, avail, used =
            match ring with
            | "desc" -> at, 0x11000UL, 0x12000UL
            | "avail" -> 0x10000UL, at, 0x12000UL
            | _ -> 0x10000UL, 0x11000UL, at

        let setup =
            Scenarios.VirtioSetupOp("memory", num, desc, avail, used, eventIdx, false, true, 64, "")

        let obs =
            Scenarios.ScenarioRunner
                .Run(Scenarios.Scenario(Profile.Qemu72, Conformance.Properties.VirtioCases.layout, [| setup :> Scenarios.ScenarioOp |]))
                .Observe()

        List.ofSeq obs.Virtio.Errors, obs.Memory.RefCounts

    Assert.Empty(fst (run (ramEnd - size)))
    let errors, refs = run (ramEnd - size + 1UL)
    Assert.Equal<string list>([ sprintf "Cannot map %s" ring ], errors)
    // the caches opened before the one that failed are closed again: nothing stays referenced
    for KeyValue(owner, count) in refs do
        Assert.True((count = Owner.Baseline), sprintf "%s keeps %d references" owner count)

/// memory_region_ref references the region's owner object (system/memory.c): regions of one device share
/// its count. The owners counted are those of regions an access can end in; a container or an alias is never
/// a section's region (flatview_translate resolves through them), so neither adds an owner of its own.
[<Fact>]
let ``regions naming one owner share its reference count, and containers and aliases add no owner`` () =
    let bar0 =
        RegionSpec(Name = "bar0", Kind = RegionKind.Ram, Size = u128 0x1000UL, Owner = "nic")

    let bar1 =
        RegionSpec(Name = "bar1", Kind = RegionKind.Ram, Size = u128 0x1000UL, Addr = 0x1000UL, Owner = "nic")

    let window =
        Spec.Copy(Spec.Region("window", RegionKind.Alias, u128 0x1000UL, 0x2000UL), target = "bar0")

    let s = MemorySystem(Spec.OneSpace [ bar0; bar1; window ], Profile.Qemu92)

    let mem = s.Space "memory"
    Assert.Equal<string list>([ "nic" ], s.Owners |> Seq.map (fun o -> o.Name) |> List.ofSeq)

    for addr in [ 0UL; 0x1000UL; 0x2000UL ] do
        Assert.True(s.Map(mem, addr, 16UL, false).Succeeded)

    Assert.Equal(Owner.Baseline + 3, (Seq.exactlyOne s.Owners).RefCount)

/// A ROM device in romd mode and a RAM device dispatch writes to their callbacks with the access sizes
/// their MemoryRegionOps declare (ram_device_mem_ops only by default); a ROM device's write callback
/// leaves its memory as it was, a RAM device's stores (memory_region_ram_device_write).
[<Fact>]
let ``ROM and RAM devices dispatch with their own access rules; only the RAM device's writes store`` () =
    let flash =
        RegionSpec(Name = "flash", Kind = RegionKind.RomDevice, Size = u128 0x1000UL, Access = AccessRules(8u, 1u, 8u, false))

    let vram =
        RegionSpec(Name = "vram", Kind = RegionKind.RamDevice, Size = u128 0x1000UL, Addr = 0x10000UL, Access = AccessRules(2u, 1u, 2u, false))

    let s = MemorySystem(Spec.OneSpace [ flash; vram ], Profile.Qemu92)

    let mem = s.Space "memory"
    let data = [| 1uy .. 8uy |]
    let value = BitConverter.ToUInt64(data, 0)

    let readAt addr =
        let b = Array.zeroCreate<byte> 8
        s.Read(mem, addr, Span b)
        b

    let flashBefore = readAt 0UL
    s.ClearAccessJournal()
    s.Write(mem, 0UL, ReadOnlySpan data)
    s.Write(mem, 0x10000UL, ReadOnlySpan data)

    let expected =
        DeviceAccess("flash", MmioAccess(true, 0UL, 8u, value))
        :: [ for k in 0..3 -> DeviceAccess("vram", MmioAccess(true, uint64 (2 * k), 2u, (value >>> (16 * k)) &&& 0xffffUL)) ]

    Assert.Equal<DeviceAccess list>(expected, List.ofSeq s.AccessJournal)
    Assert.Equal<byte[]>(flashBefore, readAt 0UL)
    Assert.Equal<byte[]>(data, readAt 0x10000UL)

/// flatview_extend_translation: a direct map goes on over the next flat range while it is the same region at
/// the next offset. Two aliases placing the two halves of one RAM side by side, one of them read-only, stay
/// two flat ranges (can_merge needs equal attributes), yet a read map covers both.
[<Fact>]
let ``a read map extends over the next flat range of the same RAM at the next offset (flatview_extend_translation)`` () =
    let ram = Spec.Region("pc.ram", RegionKind.Ram, u128 0x2000UL)

    let lo =
        Spec.Copy(Spec.Region("lo", RegionKind.Alias, u128 0x1000UL, 0x10000UL), target = "pc.ram", readonly = true)

    let hi =
        Spec.Copy(Spec.Region("hi", RegionKind.Alias, u128 0x1000UL, 0x11000UL), target = "pc.ram", aliasOffset = 0x1000UL)

    let s = MemorySystem(Spec.OneSpace([ lo; hi ], detached = [ ram ]), Profile.Qemu92)

    let mem = s.Space "memory"
    Assert.Equal(2, mem.View.Ranges.Count)
    let r = s.Map(mem, 0x10000UL, 0x2000UL, false)
    Assert.Equal(MappingKind.Direct, r.Mapping.Kind)
    Assert.Equal(0x2000UL, r.Length)
    let viaMap = Array.zeroCreate<byte> 0x2000
    s.ReadMapped(r.Mapping, 0UL, Span viaMap)
    let direct = Array.zeroCreate<byte> 0x2000
    (s.Region "pc.ram").RamBlock.Bytes.Read(0UL, Span direct)
    Assert.Equal<byte[]>(direct, viaMap)

/// U72-2: QEMU 7.2 frees the bounce buffer before it releases bounce.in_use, so no bytes are ever being freed
/// with their space already released (the 9.2 window F-DMA-6 counts).
[<Fact>]
let ``Qemu72: a bounce unmap leaves no bytes counted as being freed`` () =
    let s = system Profile.Qemu72
    let mem = s.Space "memory"
    let m = s.Map(mem, 0x100000UL, 16UL, false)
    Assert.Equal(MappingKind.Bounce, m.Mapping.Kind)
    s.Unmap(m.Mapping, 0UL) |> ignore
    Assert.Equal(0L, mem.BounceBytesFreeing)
    Assert.All(s.SnapshotBounce().Spaces, fun sp -> Assert.Equal(0L, sp.Freeing))

/// B72-4 / BM-4 (physmem.c:address_space_map): a read mapping of MMIO bounces, and the buffer is filled from
/// the device at map time (flatview_read into the bounce buffer), so every byte the caller reads is the
/// device's.
[<Fact>]
let ``a read bounce buffer holds the device's bytes, every one produced by the device`` () =
    for profile in [ Profile.Qemu72; Profile.Qemu92 ] do
        let s = system profile
        let mem = s.Space "memory"
        let data = [| 0x10uy .. 0x1fuy |]
        s.Write(mem, 0x100040UL, ReadOnlySpan data)
        let r = s.Map(mem, 0x100040UL, 16UL, false)
        Assert.Equal(MappingKind.Bounce, r.Mapping.Kind)
        let seen = Array.zeroCreate<byte> 16
        s.ReadMapped(r.Mapping, 0UL, Span seen)
        Assert.Equal<byte[]>(data, seen)
        Assert.All(r.Mapping.Bounce.Produced, fun o -> Assert.Equal(ByteOrigin.Device, o))

/// U72-1 / UM-1: unmap writes access_len bytes of a write bounce buffer back whatever the caller wrote; the
/// bytes nobody produced (7.2's uninitialised heap, 9.2's zero fill) are counted over the whole run.
[<Fact>]
let ``the run counts every unproduced byte a write-back carries, in both profiles`` () =
    for profile in [ Profile.Qemu72; Profile.Qemu92 ] do
        let s = system profile
        let mem = s.Space "memory"
        let r = s.Map(mem, 0x100000UL, 8UL, true)
        s.WriteMapped(r.Mapping, 0UL, ReadOnlySpan [| 1uy; 2uy |])
        s.Unmap(r.Mapping, 8UL) |> ignore
        Assert.Equal(6L, s.UnproducedBytesWrittenBack)
        let again = s.Map(mem, 0x100000UL, 4UL, true)
        s.Unmap(again.Mapping, 3UL) |> ignore
        Assert.Equal(9L, s.UnproducedBytesWrittenBack)

/// UM-2 (system/physmem.c:address_space_unmap, 9.2): the budget is returned first and the buffer freed after;
/// once unmap has returned the buffer is freed too, so no bytes are left counted as being freed.
[<Fact>]
let ``Qemu92: a finished bounce unmap leaves no bytes counted as being freed`` () =
    let s = system Profile.Qemu92
    let mem = s.Space "memory"

    for len in [ 16UL; 100UL ] do
        let m = s.Map(mem, 0x100000UL, len, true)
        Assert.Equal(MappingKind.Bounce, m.Mapping.Kind)
        s.Unmap(m.Mapping, len) |> ignore
        Assert.Equal(0L, mem.BounceBytesFreeing)
        Assert.Equal(0L, mem.BounceBytesAllocated)
        Assert.Equal(0UL, mem.BounceBufferSize)
        Assert.All(s.SnapshotBounce().Spaces, fun sp -> Assert.Equal(0L, sp.Freeing))

/// access_with_adjusted_size (softmmu/memory.c) masks each callback's value with MAKE_64BIT_MASK(0, size * 8),
/// which for an 8-byte callback is all 64 bits: a device whose callbacks take 8 bytes returns its whole value
/// to an 8-byte read.
[<Fact>]
let ``an 8-byte read of a device with 8-byte callbacks returns all eight bytes (access_with_adjusted_size)`` () =
    let wide =
        RegionSpec(Name = "wide", Kind = RegionKind.Io, Size = u128 0x1000UL, Addr = 0x100000UL, Access = AccessRules(8u, 8u, 8u, false))

    let s = MemorySystem(Spec.OneSpace [ wide ], Profile.Qemu92)

    let mem = s.Space "memory"
    let data = [| 0x81uy; 0x92uy; 0xa3uy; 0xb4uy; 0xc5uy; 0xd6uy; 0xe7uy; 0xf8uy |]
    s.Write(mem, 0x100008UL, ReadOnlySpan data)
    s.ClearAccessJournal()
    let back = Array.zeroCreate<byte> 8
    s.Read(mem, 0x100008UL, Span back)
    Assert.Equal<byte[]>(data, back)

    Assert.Equal<DeviceAccess list>([ DeviceAccess("wide", MmioAccess(false, 8UL, 8u, BitConverter.ToUInt64(data, 0))) ], List.ofSeq s.AccessJournal)
