/// FsCheck generators for layouts and operation sequences, and their shrinker. They aim at the edges:
/// regions that adjoin or overlap at several priorities, aliases with offsets, sizes of 1 byte to MiBs,
/// addresses near 0 and near 2^64, map lengths around the page size, partial access lengths.
module Conformance.Properties.Generators

open System
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.Oracle
open Conformance.Properties.LayoutBuilding

/// Runs `next` n times, each seeing what was generated before (newest first).
let private genSequential (n: int) (next: 'a list -> Gen<'a>) : Gen<'a list> =
    let rec loop i acc =
        if i = 0 then
            Gen.constant (List.rev acc)
        else
            Gen.bind (fun x -> loop (i - 1) (x :: acc)) (next acc)

    loop n []

let private hex (x: uint64) = sprintf "0x%x" x

let private sizes =
    [ 1UL
      2UL
      3UL
      8UL
      0x10UL
      0x40UL
      0xfffUL
      0x1000UL
      0x1001UL
      0x2000UL
      0x3000UL
      0x10000UL ]

let private genSize =
    Gen.frequency
        [ 12, Gen.elements sizes
          2, Gen.choose (1, 0x5000) |> Gen.map uint64
          1, Gen.elements [ 0x100000UL; 0x200000UL ] ]

/// Where the interesting regions of a layout cluster: near 0, in the middle, or near the top of 2^64.
let private genZone =
    Gen.frequency
        [ 5, Gen.constant 0UL
          2, Gen.elements [ 0xff000000UL; 0x1_0000_0000UL ]
          2, Gen.elements [ UInt64.MaxValue - 0xffffUL; UInt64.MaxValue - 0x2fffUL ] ]

type private Kind =
    | Ram
    | Rom
    | RomD
    | RomDOff
    | RamDev
    | Io
    | IoWide
    | Alias
    | Nest

let private genKind =
    Gen.frequency
        [ 6, Gen.constant Ram
          2, Gen.constant Rom
          1, Gen.constant RomD
          1, Gen.constant RomDOff
          1, Gen.constant RamDev
          5, Gen.constant Io
          1, Gen.constant IoWide
          3, Gen.constant Alias
          2, Gen.constant Nest ]

/// A layout: a 2^64 "system" container, a detached RAM block "backing" (alias target), 1-6 regions
/// placed around one zone, and one or two address spaces ("memory", and "dev" seeing system through
/// an alias window).
let genLayout: Gen<LayoutSpec> =
    gen {
        let! zone = genZone
        let! count = Gen.choose (1, 6)
        let! backingSize = Gen.elements [ 0x1000UL; 0x4000UL; 0x20000UL ]
        let mutable counter = 0

        let fresh prefix =
            counter <- counter + 1
            sprintf "%s%d" prefix counter

        let room (addr: uint64) (size: uint64) =
            if UInt64.MaxValue - addr < size - 1UL then
                UInt64.MaxValue - addr + 1UL
            else
                size

        let rec genRegion depth (baseZone: uint64) (others: RegionSpec list) =
            gen {
                let! kind =
                    if depth > 0 then
                        Gen.elements [ Ram; Io; Alias; Rom ]
                    else
                        genKind

                let! size = genSize
                // place at the zone start, right after a sibling, overlapping one, or at a random page offset
                let! placement = Gen.choose (0, 3)
                let! pageOffset = Gen.choose (0, 8) |> Gen.map (fun p -> uint64 p * 0x1000UL)
                let! jitter = Gen.elements [ 0UL; 1UL; 2UL; 0x10UL; 0x800UL ]

                let anchor =
                    match others with
                    | o :: _ when placement = 1 -> o.Addr + (low64 (min o.Size (u128 0x100000UL)))
                    | o :: _ when placement = 2 -> o.Addr + jitter
                    | _ when placement = 3 -> baseZone + pageOffset + jitter
                    | _ -> baseZone

                let addr = if anchor < baseZone then baseZone else anchor
                let size = room addr size
                let! priority = Gen.frequency [ 4, Gen.constant 0; 2, Gen.constant 1; 1, Gen.constant -1; 1, Gen.constant 2 ]
                let! enabled = Gen.frequency [ 9, Gen.constant true; 1, Gen.constant false ]
                let! aliasOffset = Gen.elements [ 0UL; 0x10UL; 0x1000UL; 0x800UL ]
                let! vga = Gen.frequency [ 5, Gen.constant false; 1, Gen.constant true ]

                let basic name k =
                    Spec.Region(name, k, u128 size, addr, priority, enabled)

                match kind with
                | Ram -> return Spec.Copy(basic (fresh "ram") RegionKind.Ram, logVga = vga)
                | Rom -> return basic (fresh "rom") RegionKind.Rom
                | RomD -> return basic (fresh "romd") RegionKind.RomDevice
                | RomDOff -> return Spec.Copy(basic (fresh "romdev") RegionKind.RomDevice, romdMode = false)
                | RamDev -> return basic (fresh "ramdev") RegionKind.RamDevice
                | Io -> return basic (fresh "mmio") RegionKind.Io
                | IoWide ->
                    let! rules =
                        Gen.elements
                            [ AccessRules(8u, 1u, 8u, false)
                              AccessRules(2u, 2u, 2u, false)
                              AccessRules(4u, 1u, 1u, true) ]

                    return Spec.Copy(basic (fresh "mmio") RegionKind.Io, access = rules)
                | Alias ->
                    // Placed right after an alias of the same block, it sometimes continues that alias's bytes:
                    // two flat ranges of one RAM block, host-contiguous, which only a different readonly flag
                    // keeps flatview_simplify from merging — what flatview_extend_translation extends a direct
                    // mapping across. (A readonly alias changes no access: memory_access_is_direct looks at
                    // the RAM region's own flag.)
                    let! continues = Gen.frequency [ 1, Gen.constant false; 1, Gen.constant true ]
                    let! readonly = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]

                    let continuation =
                        match others with
                        | o :: _ when
                            continues
                            && o.Kind = RegionKind.Alias
                            && o.AliasTarget = "backing"
                            && o.AliasOffset + low64 o.Size < backingSize
                            && u128 o.Addr + o.Size < two64
                            ->
                            Some(o.Addr + low64 o.Size, o.AliasOffset + low64 o.Size, not o.Readonly)
                        | _ -> None

                    match continuation with
                    | Some(at, next, flipped) ->
                        let asize = min (room at size) (backingSize - next)

                        return
                            Spec.Copy(
                                Spec.Region(fresh "alias", RegionKind.Alias, u128 asize, at, priority, enabled),
                                target = "backing",
                                aliasOffset = next,
                                readonly = flipped
                            )
                    | None ->
                        let off = if aliasOffset >= backingSize then 0UL else aliasOffset
                        let asize = min size (backingSize - off)
                        return Spec.Copy(basic (fresh "alias") RegionKind.Alias, size = u128 asize, target = "backing", aliasOffset = off, readonly = readonly)
                | Nest ->
                    let! n = Gen.choose (1, 3)
                    let size' = room addr (max size 0x4000UL)
                    let! children = genSequential n (fun acc -> genRegion (depth + 1) 0UL acc)
                    let children = children |> List.filter (fun c -> u128 c.Addr + c.Size <= u128 size')
                    return Spec.Copy(basic (fresh "box") RegionKind.Container, size = u128 size', subregions = children)
            }

        let! regions = genSequential count (fun acc -> genRegion 0 zone acc)

        let system =
            Spec.Copy(Spec.Region("system", RegionKind.Container, two64), subregions = regions)

        let backing = Spec.Region("backing", RegionKind.Ram, u128 backingSize)
        let! twoSpaces = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]
        let! window = Gen.elements [ 0UL; 0x1000UL ]

        let! budget =
            Gen.frequency
                [ 6, Gen.constant ProfileFacts.DefaultMaxBounceBufferSize
                  1, Gen.elements [ 1UL; 100UL; 8192UL; 65536UL ] ]

        let! dirty =
            Gen.frequency
                [ 6, Gen.constant DirtyLogging.Default
                  1, Gen.constant (DirtyLogging(false, true))
                  1, Gen.constant (DirtyLogging(true, false)) ]

        let windowBase = zone &&& 0xffffffffff000000UL

        let devWindow =
            Spec.Copy(Spec.Region("dev-window", RegionKind.Alias, two64 - u128 windowBase - u128 window, window), target = "system", aliasOffset = windowBase)

        let devRoot =
            Spec.Copy(Spec.Region("dev-root", RegionKind.Container, two64), subregions = [ devWindow ])

        let spaces =
            [ AddressSpaceSpec("memory", "system", budget) ]
            @ (if twoSpaces then
                   [ AddressSpaceSpec("dev", "dev-root", budget) ]
               else
                   [])

        let roots = [ system; backing ] @ (if twoSpaces then [ devRoot ] else [])
        return LayoutSpec(List.toArray roots, List.toArray spaces, dirty)
    }

/// Addresses worth probing in a layout: region edges, one byte either side, page-aligned neighbours,
/// and a few arbitrary ones.
let interestingAddresses (layout: LayoutSpec) (space: string) =
    boundaries layout space
    |> Seq.collect (fun p -> [ p; p - 1UL; p + 1UL; p - 0x10UL; p + 0x800UL; p &&& ~~~0xfffUL ])
    |> Seq.distinct
    |> Seq.sort
    |> Array.ofSeq

/// 1-16 bytes mostly, up to 300 sometimes. The bytes come from one drawn seed (SplitMix64) rather than one
/// generator call per byte: the property only needs them distinct and reproducible, and per-byte
/// generation was a tenth of a DMA case's cost.
let private genData =
    gen {
        let! n = Gen.frequency [ 3, Gen.choose (1, 16); 1, Gen.choose (17, 300) ]
        let! seed = Gen.choose (Int32.MinValue, Int32.MaxValue)
        let mutable x = uint64 (uint32 seed) * 0x9E3779B97F4A7C15UL

        return
            Array.init n (fun _ ->
                x <- x + 0x9E3779B97F4A7C15UL
                let z = (x ^^^ (x >>> 30)) * 0xBF58476D1CE4E5B9UL
                let z = (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
                byte (z ^^^ (z >>> 31)))
    }

let genMapLen =
    Gen.frequency
        [ 3, Gen.elements [ 1UL; 2UL; 4UL; 7UL; 8UL; 16UL; 100UL ]
          4, Gen.elements [ 4095UL; 4096UL; 4097UL; 8192UL; 12288UL ]
          2, Gen.choose (1, 0x3000) |> Gen.map uint64
          1, Gen.elements [ 0UL; 0x100000UL ] ]

let private genClient = Gen.elements [ "c1"; "c2"; "c3" ]

/// Operations over a layout. Mappings are named m<i> after the position that created them, so removing
/// operations while shrinking never renames the others; operations on a mapping that is not live are skipped.
/// Each operation draws only the values its kind uses.
let genOps (layout: LayoutSpec) : Gen<ScenarioOp list> =
    let spaces = layout.AddressSpaces |> Seq.map (fun a -> a.Name) |> Array.ofSeq

    let points =
        spaces |> Array.map (fun s -> s, interestingAddresses layout s) |> Map.ofArray
    // where a write mapping bounces, by the oracle: every point, resolved only when a contention motif finds
    // none among a few drawn at random (a fresh layout per case makes resolving them all a large share of a
    // case's time)
    let bouncing =
        spaces
        |> Array.map (fun s -> s, lazy (points.[s] |> Array.filter (fun p -> not (isDirect (resolve layout s p) true))))
        |> Map.ofArray

    let bounces space p =
        not (isDirect (resolve layout space p) true)

    /// A point where a write mapping bounces, uniform over all such points: the first bouncing one of eight
    /// drawn uniformly, else one of the full list (0 when there is none).
    let genBouncing space =
        if points.[space].Length = 0 then
            Gen.constant 0UL
        else
            gen {
                let! tries = Gen.arrayOfLength 8 (Gen.elements points.[space])

                match tries |> Array.tryFind (bounces space) with
                | Some p -> return p
                | None ->
                    let all = bouncing.[space].Value

                    if all.Length = 0 then
                        return 0UL
                    else
                        let! p = Gen.elements all
                        return p
            }

    let genAddr space =
        Gen.frequency
            [ 9, Gen.elements points.[space]
              1, Gen.choose (0, Int32.MaxValue) |> Gen.map (fun x -> uint64 x * 0x9E3779B9UL) ]

    let genPick (mapIds: ResizeArray<string>) =
        if mapIds.Count = 0 then
            Gen.constant None
        else
            Gen.choose (0, mapIds.Count - 1) |> Gen.map (fun i -> Some mapIds.[i])

    gen {
        let! n = Gen.choose (1, 25)
        let ops = ResizeArray<ScenarioOp>()
        let mapIds = ResizeArray<string>()

        for i in 0 .. n - 1 do
            let! space = Gen.elements spaces

            let! choice =
                Gen.frequency
                    [ 8, Gen.constant 0
                      4, Gen.constant 1
                      6, Gen.constant 2
                      2, Gen.constant 3
                      2, Gen.constant 4
                      2, Gen.constant 5
                      1, Gen.constant 6
                      2, Gen.constant 7
                      1, Gen.constant 8
                      3, Gen.constant 9 ]

            match choice with
            | 0 ->
                let! addr = genAddr space
                let! len = genMapLen
                let! write = Gen.frequency [ 3, Gen.constant true; 2, Gen.constant false ]
                let id = sprintf "m%d" i
                mapIds.Add id
                ops.Add(MapOp(id, space, addr, len, write))
            | 1 ->
                let! picked = genPick mapIds
                let! offset = Gen.elements [ 0UL; 0UL; 1UL; 3UL; 0x800UL ]
                let! fill = Gen.frequency [ 2, Gen.constant None; 1, Gen.choose (0, 255) |> Gen.map (byte >> Some) ]
                let! data = if fill.IsSome then Gen.constant null else genData

                match picked with
                | Some id -> ops.Add(WriteMappedOp(id, offset, data, Option.toNullable fill))
                | None -> ()
            | 2 ->
                let! picked = genPick mapIds

                let! access =
                    Gen.frequency
                        [ 5, Gen.constant None
                          2, Gen.constant (Some 0UL)
                          2, Gen.elements [ Some 1UL; Some 3UL; Some 8UL; Some 4095UL; Some 4096UL ] ]

                match picked with
                | Some id -> ops.Add(UnmapOp(id, Option.toNullable access))
                | None -> ()
            | 3 ->
                let! addr = genAddr space
                let! readLen = Gen.elements [ 1UL; 4UL; 8UL; 64UL; 4097UL ]
                ops.Add(ReadOp(space, addr, readLen))
            | 4 ->
                let! addr = genAddr space
                let! data = genData
                ops.Add(WriteOp(space, addr, data))
            | 5 ->
                let! client = genClient
                ops.Add(RegisterClientOp(space, client))
            | 6 ->
                let! client = genClient
                ops.Add(UnregisterClientOp(space, client))
            | 7 -> ops.Add(RunBottomHalvesOp())
            | 9 ->
                // Contention motif: take bounce space, wait for it as a map client (perhaps giving up), release it.
                let! contendAddr = genBouncing space

                let! contendLen = Gen.elements [ 4096UL; 8192UL; 65536UL ]
                let! client = genClient
                let! withdraw = Gen.elements [ true; false ]
                let id = sprintf "m%d" i
                ops.Add(MapOp(id, space, contendAddr, contendLen, true))
                ops.Add(RegisterClientOp(space, client))

                if withdraw then
                    ops.Add(UnregisterClientOp(space, client))

                ops.Add(UnmapOp(id, Nullable 0UL))
                ops.Add(RunBottomHalvesOp())
            | _ ->
                let! picked = genPick mapIds
                let! offset = Gen.elements [ 0UL; 0UL; 1UL; 3UL; 0x800UL ]
                let! len = Gen.frequency [ 2, Gen.constant None; 1, Gen.elements [ Some 1UL; Some 8UL; Some 4096UL ] ]

                match picked with
                | Some id -> ops.Add(ReadMappedOp(id, offset, Option.toNullable len))
                | None -> ()

        return List.ofSeq ops
    }

let genScenario (profile: Profile) : Gen<Scenario> =
    gen {
        let! layout = genLayout
        let! ops = genOps layout
        return Scenario(profile, layout, List.toArray ops)
    }

// ---------------------------------------------------------------- shrinking

let private builds (s: Scenario) =
    try
        MemorySystem(s.Layout, s.Profile) |> ignore
        true
    with :? LayoutError ->
        false

let rec private withoutRegion (r: RegionSpec) (victim: RegionSpec) : RegionSpec =
    Spec.Copy(
        r,
        subregions =
            (r.Subregions
             |> Seq.filter (fun c -> not (Object.ReferenceEquals(c, victim)))
             |> Seq.map (fun c -> withoutRegion c victim))
    )

let rec private replaceRegion (r: RegionSpec) (victim: RegionSpec) (replacement: RegionSpec) : RegionSpec =
    if Object.ReferenceEquals(r, victim) then
        replacement
    else
        Spec.Copy(r, subregions = (r.Subregions |> Seq.map (fun c -> replaceRegion c victim replacement)))

/// Shrinks a scenario toward fewer operations, fewer regions and plainer values. Candidates whose
/// layout no longer builds (an alias lost its target) are dropped.
let shrinkScenario (s: Scenario) : seq<Scenario> =
    let ops = List.ofSeq s.Ops

    let withOps o =
        Scenario(s.Profile, s.Layout, List.toArray o)

    let withLayout l = Scenario(s.Profile, l, s.Ops)

    let opCandidates =
        seq {
            let n = ops.Length

            if n > 1 then
                yield withOps (List.take (n / 2) ops)
                yield withOps (List.skip (n / 2) ops)

            for i in 0 .. n - 1 do
                yield withOps (List.removeAt i ops)

            for i in 0 .. n - 1 do
                match ops.[i] with
                | :? MapOp as m when m.Len > 1UL ->
                    for l in [ 1UL; 8UL; 4096UL; m.Len / 2UL ] do
                        if l < m.Len then
                            yield withOps (List.updateAt i (MapOp(m.Id, m.Space, m.Addr, l, m.Write) :> ScenarioOp) ops)
                | :? WriteMappedOp as w when not (isNull w.Data) && w.Data.Length > 1 ->
                    yield withOps (List.updateAt i (WriteMappedOp(w.Id, w.Offset, Array.take 1 w.Data, w.FillByte) :> ScenarioOp) ops)
                | :? WriteOp as w when w.Data.Length > 1 -> yield withOps (List.updateAt i (WriteOp(w.Space, w.Addr, Array.take 1 w.Data) :> ScenarioOp) ops)
                | :? ReadOp as r when r.Len > 1UL -> yield withOps (List.updateAt i (ReadOp(r.Space, r.Addr, 1UL) :> ScenarioOp) ops)
                | _ -> ()
        }

    let layoutCandidates =
        seq {
            let all =
                s.Layout.Regions
                |> Seq.collect (fun r -> r.SelfAndDescendants())
                |> Seq.filter (fun r -> r.Name <> "system")
                |> List.ofSeq

            for victim in all do
                if s.Layout.Regions |> Seq.exists (fun r -> Object.ReferenceEquals(r, victim)) then
                    let roots =
                        s.Layout.Regions
                        |> Seq.filter (fun r -> not (Object.ReferenceEquals(r, victim)))
                        |> Array.ofSeq

                    let spaces =
                        s.Layout.AddressSpaces
                        |> Seq.filter (fun a -> a.Root <> victim.Name)
                        |> Array.ofSeq

                    let names = spaces |> Array.map (fun a -> a.Name) |> Set.ofArray
                    // operations on an address space that went away go with it
                    let uses (op: ScenarioOp) =
                        match op with
                        | :? MapOp as m -> Some m.Space
                        | :? ReadOp as r -> Some r.Space
                        | :? WriteOp as w -> Some w.Space
                        | :? RegisterClientOp as c -> Some c.Space
                        | :? UnregisterClientOp as c -> Some c.Space
                        | _ -> None

                    let ops' =
                        s.Ops
                        |> Seq.filter (fun o ->
                            match uses o with
                            | Some sp -> names.Contains sp
                            | None -> true)
                        |> Array.ofSeq

                    if spaces.Length > 0 then
                        yield Scenario(s.Profile, LayoutSpec(roots, spaces, s.Layout.Dirty), ops')
                else
                    yield
                        withLayout (
                            LayoutSpec(s.Layout.Regions |> Seq.map (fun r -> withoutRegion r victim) |> Array.ofSeq, s.Layout.AddressSpaces, s.Layout.Dirty)
                        )

            for victim in all do
                let plainer =
                    [ if victim.Priority <> 0 then
                          Spec.Copy(victim, priority = 0)
                      if not victim.Enabled then
                          Spec.Copy(victim, enabled = true)
                      if victim.LogVga then
                          Spec.Copy(victim, logVga = false) ]

                for p in plainer do
                    yield
                        withLayout (
                            LayoutSpec(s.Layout.Regions |> Seq.map (fun r -> replaceRegion r victim p) |> Array.ofSeq, s.Layout.AddressSpaces, s.Layout.Dirty)
                        )
        }

    Seq.append opCandidates layoutCandidates |> Seq.filter builds

let arbScenario (profile: Profile) : Arbitrary<Scenario> =
    Arb.fromGenShrink (genScenario profile, shrinkScenario)
