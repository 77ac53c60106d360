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
    if not r.Enabled || rel >= r.Size then None
    elif r.Kind = RegionKind.Alias then
        find spec (byName spec r.AliasTarget) (rel + u128 r.AliasOffset)
    else
        let hit =
            r.Subregions
            |> Seq.indexed
            |> Seq.sortBy (fun (i, c) -> -c.Priority, -i)
            |> Seq.tryPick (fun (_, c) -> if rel >= u128 c.Addr then find spec c (rel - u128 c.Addr) else None)
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
    if a < u128 root.Addr then None else find spec root (a - u128 root.Addr)

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
    | Some h -> h.Region.Kind = RegionKind.Ram || h.Region.Kind = RegionKind.Rom || h.Region.Kind = RegionKind.RamDevice
    | None -> false

/// Whether an access of this direction reaches a device callback (and so the device's access log).
let reachesDevice (hit: Hit option) (isWrite: bool) =
    match hit with
    | None -> false
    | Some h ->
        match h.Region.Kind with
        | RegionKind.Io | RegionKind.RamDevice -> true
        | RegionKind.RomDevice -> isWrite || not h.Region.RomdMode
        | _ -> false

/// Whether a write of this byte lands in RAM directly (and is dirty-tracked).
let writesRam (hit: Hit option) = isDirect hit true

let ownerOf (hit: Hit option) =
    hit |> Option.map (fun h -> if isNull h.Region.Owner then h.Region.Name else h.Region.Owner)

/// Every absolute address where the resolution of `space` may change: starts and ends of all regions
/// as placed (through aliases too). Between two consecutive points the hit is one region, contiguous.
let boundaries (spec: LayoutSpec) (space: string) : Set<uint64> =
    let points = Collections.Generic.HashSet<uint64>()
    let add (x: UInt128) = if x < two64 then points.Add(low64 x) |> ignore
    let rec walk (r: RegionSpec) (start: UInt128) depth =
        if depth < 8 then
            add start
            add (start + r.Size)
            if r.Kind = RegionKind.Alias then
                let t = byName spec r.AliasTarget
                let off = u128 r.AliasOffset
                if start >= off then walk t (start - off) (depth + 1)
                else
                    // the target starts before address 0: only its pieces at or after 0 matter
                    for c in t.Subregions do
                        let cs = u128 c.Addr
                        if cs >= off then walk c (start + cs - off) (depth + 1)
            else
                for c in r.Subregions do
                    walk c (start + u128 c.Addr) depth
    let root = rootOf spec space
    walk root (u128 root.Addr) 0
    points.Add 0UL |> ignore
    Set.ofSeq points

/// Oracle for a direct mapping's length: how far from `addr` the bytes stay in the same region at
/// contiguous offsets (flatview_extend_translation), capped by the request and the end of the region.
let contiguousRun (spec: LayoutSpec) (space: string) (addr: uint64) (request: uint64) =
    match resolve spec space addr with
    | None -> 0UL
    | Some first ->
        let limit = min request (low64 (first.Region.Size - u128 first.Offset))
        let endAddr = u128 addr + u128 limit
        let candidates =
            boundaries spec space
            |> Seq.filter (fun p -> p > addr && u128 p < endAddr)
            |> Seq.sort
        let broken =
            candidates
            |> Seq.tryFind (fun p ->
                match resolve spec space p with
                | Some h -> not (Object.ReferenceEquals(h.Region, first.Region)) || h.Offset <> first.Offset + (p - addr)
                | None -> true)
        match broken with
        | Some p -> p - addr
        | None -> limit
