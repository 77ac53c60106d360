/// An independent restatement of the QEMU rules the properties judge the model by: a naive
/// "topmost enabled region by priority" search over the layout (no FlatView rendering), and the
/// direct/bounce table of include/exec/memory.h:memory_access_is_direct.
module Conformance.Properties.Oracle

open System
open Conformance.Model

let u128 (x: uint64) = UInt128(0UL, x)
let low64 (x: UInt128) : uint64 = UInt128.op_Explicit x
let two64 = UInt128(1UL, 0UL)

/// A region of the layout, resolved for one byte: None is unassigned.
type Hit = { Region: RegionSpec; Offset: uint64 }

let private byName (spec: LayoutSpec) (name: string) =
    let roots = spec.Regions |> Seq.filter (fun r -> r.Name = name) |> List.ofSeq

    match roots with
    | [ r ] -> r
    | _ -> spec.AllRegions() |> Seq.find (fun r -> r.Name = name)

let terminates (r: RegionSpec) =
    r.Kind <> RegionKind.Container && r.Kind <> RegionKind.Alias

/// The topmost enabled terminal region at `rel` bytes into `r`: children by descending priority, the
/// most recently added first among equals, an alias looks into its target at `rel + offset`.
let rec private find (spec: LayoutSpec) (r: RegionSpec) (rel: UInt128) : Hit option =
    if not r.Enabled || rel >= r.Size then
        None
    elif r.Kind = RegionKind.Alias then
        find spec (byName spec r.AliasTarget) (rel + u128 r.AliasOffset)
    else
        // children from the most recently added back: one found later replaces it only with a higher
        // priority, so the hit is the first by (priority descending, most recent first)
        let subs = r.Subregions
        let mutable hit = None
        let mutable hitPriority = Int32.MinValue

        for i in subs.Count - 1 .. -1 .. 0 do
            let c = subs.[i]

            if (hit.IsNone || c.Priority > hitPriority) && rel >= u128 c.Addr then
                match find spec c (rel - u128 c.Addr) with
                | Some _ as h ->
                    hit <- h
                    hitPriority <- c.Priority
                | None -> ()

        match hit with
        | Some _ -> hit
        | None when terminates r -> Some { Region = r; Offset = low64 rel }
        | None -> None

let rootOf (spec: LayoutSpec) (space: string) =
    let a = spec.AddressSpaces |> Seq.find (fun a -> a.Name = space)

    match Option.ofNullable a.RootIndex with
    | Some i -> spec.Regions.[i]
    | None -> byName spec a.Root

/// What one address of an address space resolves to.
let resolve (spec: LayoutSpec) (space: string) (addr: uint64) : Hit option =
    let root = rootOf spec space
    let a = u128 addr

    if a < u128 root.Addr then
        None
    else
        find spec root (a - u128 root.Addr)

/// include/exec/memory.h:memory_access_is_direct, restated.
let isDirect (hit: Hit option) (isWrite: bool) =
    match hit with
    | None -> false
    | Some h ->
        match h.Region.Kind with
        | RegionKind.Ram -> not (isWrite && h.Region.Readonly)
        | RegionKind.Rom -> not isWrite
        | RegionKind.RomDevice -> not isWrite && h.Region.RomdMode
        | _ -> false

/// memory_region_is_ram: the regions translation clamps to their section.
let isRam (hit: Hit option) =
    match hit with
    | Some h ->
        h.Region.Kind = RegionKind.Ram
        || h.Region.Kind = RegionKind.Rom
        || h.Region.Kind = RegionKind.RamDevice
    | None -> false

/// Whether an access of this direction reaches a device callback (and so the device's access log).
let reachesDevice (hit: Hit option) (isWrite: bool) =
    match hit with
    | None -> false
    | Some h ->
        match h.Region.Kind with
        | RegionKind.Io
        | RegionKind.RamDevice -> true
        | RegionKind.RomDevice -> isWrite || not h.Region.RomdMode
        | _ -> false

/// Whether a write of this byte lands in RAM directly (and is dirty-tracked).
let writesRam (hit: Hit option) = isDirect hit true

let ownerOf (hit: Hit option) =
    hit
    |> Option.map (fun h ->
        if isNull h.Region.Owner then
            h.Region.Name
        else
            h.Region.Owner)

/// Every absolute address where the resolution of `space` may change: starts and ends of all regions
/// as placed (through aliases too). Between two consecutive points the hit is one region, contiguous.
let private computeBoundaries (spec: LayoutSpec) (space: string) : uint64[] =
    let points = ResizeArray<uint64>(16)

    let add (x: UInt128) =
        if x < two64 then
            points.Add(low64 x)

    let rec walk (r: RegionSpec) (start: UInt128) depth =
        if depth < 8 then
            add start
            add (start + r.Size)

            if r.Kind = RegionKind.Alias then
                let t = byName spec r.AliasTarget
                let off = u128 r.AliasOffset

                if start >= off then
                    walk t (start - off) (depth + 1)
                else
                    // the target starts before address 0: only its pieces at or after 0 matter
                    for c in t.Subregions do
                        let cs = u128 c.Addr

                        if cs >= off then
                            walk c (start + cs - off) (depth + 1)
            else
                for c in r.Subregions do
                    walk c (start + u128 c.Addr) depth

    let root = rootOf spec space
    walk root (u128 root.Addr) 0
    points.Add 0UL
    points.Sort()
    // each point once
    let mutable n = 0

    for i in 0 .. points.Count - 1 do
        if n = 0 || points.[n - 1] <> points.[i] then
            points.[n] <- points.[i]
            n <- n + 1

    points.GetRange(0, n).ToArray()

/// The boundaries of the address spaces asked for last. A case asks about one layout many times (while
/// generating its operations, then judging each step), and a run moves on to the next layout for good: a
/// few recent entries hold every reuse, where a table keyed by every layout ever seen cost a lock and a
/// weak handle per case. Entries are immutable and replaced whole, so racing threads at worst recompute.
let private recentBoundaries: (LayoutSpec * string * uint64[])[] =
    Array.zeroCreate 8

let mutable private nextSlot = 0

/// Sorted boundary points of an address space (cached for the layouts in use).
let boundaries (spec: LayoutSpec) (space: string) : uint64[] =
    let mutable found = null

    for entry in recentBoundaries do
        if not (isNull (box entry)) then
            let (l, s, points) = entry

            if Object.ReferenceEquals(l, spec) && s = space then
                found <- points

    if isNull found then
        found <- computeBoundaries spec space
        let slot = Threading.Interlocked.Increment(&nextSlot) &&& 7
        recentBoundaries.[slot] <- (spec, space, found)

    found

/// The transfer [addr, addr+len) cut where the resolution may change: (first byte, end byte, hit at the
/// first byte) with offsets relative to addr; inside a piece the hit's offset grows with the address.
/// Addresses wrap at 2^64 as hwaddr arithmetic does.
let segments (spec: LayoutSpec) (space: string) (addr: uint64) (len: uint64) : (uint64 * uint64 * Hit option) list =
    let points = boundaries spec space

    let piece (start: uint64) (count: uint64) (kBase: uint64) =
        let endA = u128 start + u128 count

        let cuts =
            points
            |> Array.filter (fun p -> p > start && u128 p < endA)
            |> Array.map (fun p -> p - start)
            |> List.ofArray

        let starts = 0UL :: cuts
        let ends = cuts @ [ count ]
        List.map2 (fun k0 k1 -> kBase + k0, kBase + k1, resolve spec space (start + k0)) starts ends

    let raw =
        if len = 0UL then
            []
        elif u128 addr + u128 len <= two64 then
            piece addr len 0UL
        else
            let first = 0UL - addr
            piece addr first 0UL @ piece 0UL (len - first) first
    // Merge neighbours that continue the same region at contiguous offsets (a flat range, as
    // flatview_simplify would leave it), so a boundary hidden under another region does not cut.
    let contiguous (a0, a1, ha: Hit option) (_, _, hb: Hit option) =
        match ha, hb with
        | Some x, Some y -> Object.ReferenceEquals(x.Region, y.Region) && y.Offset = x.Offset + (a1 - a0)
        | None, None -> true
        | _ -> false

    raw
    |> List.fold
        (fun acc seg ->
            match acc with
            | (p0, _, ph) as prev :: rest when contiguous prev seg -> let (_, s1, _) = seg in (p0, s1, ph) :: rest
            | _ -> seg :: acc)
        []
    |> List.rev

/// Oracle for a direct mapping's length: how far from `addr` the bytes stay in the same region at
/// contiguous offsets (flatview_extend_translation), capped by the request and the end of the region.
/// A transfer that wraps past 2^64 continues at address 0, as hwaddr arithmetic does.
let contiguousRun (spec: LayoutSpec) (space: string) (addr: uint64) (request: uint64) =
    match segments spec space addr request with
    | (k0, k1, Some first) :: _ ->
        let limit = min request (low64 (first.Region.Size - u128 first.Offset))
        min k1 limit - k0
    | _ -> 0UL

/// The access rules a hit's accesses follow: its own ops, ram_device_mem_ops for RAM devices, and
/// unassigned_mem_ops (defaults) for holes and for ROM/RAM written through dispatch.
let rulesOf (hit: Hit option) =
    match hit with
    | Some h when
        not (isNull h.Region.Access)
        && (h.Region.Kind = RegionKind.Io
            || h.Region.Kind = RegionKind.RomDevice
            || h.Region.Kind = RegionKind.RamDevice)
        ->
        h.Region.Access
    | Some h when h.Region.Kind = RegionKind.RamDevice -> AccessRules.RamDevice
    | _ -> AccessRules.Default

let pow2floor (x: uint64) =
    if x = 0UL then
        0UL
    else
        1UL <<< (63 - Numerics.BitOperations.LeadingZeroCount x)

/// softmmu/physmem.c:memory_access_size, restated.
let accessSize (rules: AccessRules) (l: uint64) (offset: uint64) =
    let mutable max = uint64 rules.EffectiveValidMax

    if not rules.ImplUnaligned then
        let align = offset &&& (~~~offset + 1UL)

        if align <> 0UL && align < max then
            max <- align

    pow2floor (min l max)

/// One step of QEMU's walk over a transfer: bytes [Start, Start+Length) of the transfer go to Hit at
/// Offset in one go (a memcpy for direct RAM, one dispatch for I/O). SegmentEnd is where the hit stops.
type Chunk =
    { Start: uint64
      Length: uint64
      Hit: Hit option
      Offset: uint64
      Direct: bool
      SegmentEnd: uint64 }

    member c.Straddles = c.Start + c.Length > c.SegmentEnd

/// softmmu/physmem.c:flatview_read_continue / flatview_write_continue, restated over the naive
/// resolution: RAM is clamped to its section, I/O accesses are sized by memory_access_size only.
let chunks (spec: LayoutSpec) (space: string) (addr: uint64) (len: uint64) (isWrite: bool) : Chunk list =
    let segs = segments spec space addr len |> Array.ofList
    let result = ResizeArray<Chunk>()
    let mutable pos = 0UL
    let mutable si = 0

    while pos < len do
        while (let (_, s1, _) = segs.[si] in s1 <= pos) do
            si <- si + 1

        let (s0, s1, hit) = segs.[si]

        let offset =
            match hit with
            | Some h -> h.Offset + (pos - s0)
            | None -> addr + pos

        let direct = isDirect hit isWrite
        let mutable l = len - pos

        if isRam hit then
            l <- min l (s1 - pos)

        if not direct then
            l <- accessSize (rulesOf hit) l offset
        // qemu_ram_ptr_length: a direct copy ends at the end of the RAMBlock (for a romd device this is
        // the only clamp, so the copy can run past the section: F-DMA-5)
        else
            l <- min l (low64 (hit.Value.Region.Size - u128 offset))

        result.Add
            { Start = pos
              Length = l
              Hit = hit
              Offset = offset
              Direct = direct
              SegmentEnd = s1 }

        pos <- pos + l

    List.ofSeq result

/// A device callback QEMU makes for a chunk (softmmu/memory.c:access_with_adjusted_size): region,
/// offset, size, and the transfer byte its first byte carries.
/// Carries is how many of its bytes are transfer bytes (fewer than Size when widened).
type ExpectedAccess =
    { Region: string
      Offset: uint64
      Size: uint32
      FirstByte: uint64
      Carries: uint32
      Widened: bool }

let deviceAccesses (cs: Chunk list) (isWrite: bool) =
    [ for c in cs do
          if reachesDevice c.Hit isWrite then
              let rules = rulesOf c.Hit

              let size =
                  max (min c.Length (uint64 rules.EffectiveImplMax)) (uint64 rules.EffectiveImplMin)

              let mutable i = 0UL

              while i < c.Length do
                  yield
                      { Region = c.Hit.Value.Region.Name
                        Offset = c.Offset + i
                        Size = uint32 size
                        FirstByte = c.Start + i
                        Carries = uint32 (min size (c.Length - i))
                        Widened = size > c.Length }

                  i <- i + size ]
