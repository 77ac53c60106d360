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

/// Draws a case's values from one seed (SplitMix64). FsCheck's gen builder pays a bind, a few closures and
/// a split of its random state for every value, which made generating a case cost as much as running and
/// judging it; the draws below make the same choices with the same weights, so the cases' distribution is
/// the same. FsCheck still supplies the seed, so a case is reproducible from its replay token.
type private Draw(seed: uint64) =
    let mutable x = seed

    member _.Next() : uint64 =
        x <- x + 0x9E3779B97F4A7C15UL
        let z = (x ^^^ (x >>> 30)) * 0xBF58476D1CE4E5B9UL
        let z = (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)

    /// Uniform over [lo, hi] (Gen.choose); the modulo bias is below 2^-31 for these ranges.
    member d.Choose(lo: int, hi: int) : int =
        int (int64 lo + int64 (d.Next() % uint64 (int64 hi - int64 lo + 1L)))

    /// One of `xs`, uniformly (Gen.elements).
    member d.Element(xs: 'a[]) : 'a = xs.[d.Choose(0, xs.Length - 1)]

    /// The index of an alternative, chosen with the given weights (Gen.frequency).
    member d.Pick(weights: int[]) : int =
        let mutable r = d.Choose(0, Array.sum weights - 1)
        let mutable i = 0

        while r >= weights.[i] do
            r <- r - weights.[i]
            i <- i + 1

        i

/// A generator over a seed drawn by FsCheck.
let private drawing (f: Draw -> 'a) : Gen<'a> =
    Gen.map2
        (fun (hi: int) (lo: int) -> f (Draw((uint64 (uint32 hi) <<< 32) ||| uint64 (uint32 lo))))
        (Gen.choose (Int32.MinValue, Int32.MaxValue))
        (Gen.choose (Int32.MinValue, Int32.MaxValue))

let private sizes =
    [| 1UL
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
       0x10000UL |]

let private drawSize (d: Draw) =
    match d.Pick [| 12; 2; 1 |] with
    | 0 -> d.Element sizes
    | 1 -> uint64 (d.Choose(1, 0x5000))
    | _ -> d.Element [| 0x100000UL; 0x200000UL |]

/// Where the interesting regions of a layout cluster: near 0, in the middle, or near the top of 2^64.
let private drawZone (d: Draw) =
    match d.Pick [| 5; 2; 2 |] with
    | 0 -> 0UL
    | 1 -> d.Element [| 0xff000000UL; 0x1_0000_0000UL |]
    | _ -> d.Element [| UInt64.MaxValue - 0xffffUL; UInt64.MaxValue - 0x2fffUL |]

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

let private kinds = [| Ram; Rom; RomD; RomDOff; RamDev; Io; IoWide; Alias; Nest |]
let private kindWeights = [| 6; 2; 1; 1; 1; 5; 1; 3; 2 |]
let private nestedKinds = [| Ram; Io; Alias; Rom |]

let private drawBool (d: Draw) (trueWeight: int) (falseWeight: int) =
    d.Pick [| trueWeight; falseWeight |] = 0

/// A layout: a 2^64 "system" container, a detached RAM block "backing" (alias target), 1-6 regions
/// placed around one zone, and one or two address spaces ("memory", and "dev" seeing system through
/// an alias window).
let private drawLayout (d: Draw) : LayoutSpec =
    let zone = drawZone d
    let count = d.Choose(1, 6)
    let backingSize = d.Element [| 0x1000UL; 0x4000UL; 0x20000UL |]
    let mutable counter = 0

    let fresh prefix =
        counter <- counter + 1
        prefix + string counter

    let room (addr: uint64) (size: uint64) =
        if UInt64.MaxValue - addr < size - 1UL then
            UInt64.MaxValue - addr + 1UL
        else
            size

    /// `others`: the regions placed before this one at its level, newest first.
    let rec drawRegion depth (baseZone: uint64) (others: RegionSpec list) : RegionSpec =
        let kind =
            if depth > 0 then
                d.Element nestedKinds
            else
                kinds.[d.Pick kindWeights]

        let size = drawSize d
        // place at the zone start, right after a sibling, overlapping one, or at a random page offset
        let placement = d.Choose(0, 3)
        let pageOffset = uint64 (d.Choose(0, 8)) * 0x1000UL
        let jitter = d.Element [| 0UL; 1UL; 2UL; 0x10UL; 0x800UL |]

        let anchor =
            match others with
            | o :: _ when placement = 1 -> o.Addr + (low64 (min o.Size (u128 0x100000UL)))
            | o :: _ when placement = 2 -> o.Addr + jitter
            | _ when placement = 3 -> baseZone + pageOffset + jitter
            | _ -> baseZone

        let addr = if anchor < baseZone then baseZone else anchor
        let size = room addr size
        let priority = [| 0; 1; -1; 2 |].[d.Pick [| 4; 2; 1; 1 |]]
        let enabled = drawBool d 9 1
        let aliasOffset = d.Element [| 0UL; 0x10UL; 0x1000UL; 0x800UL |]
        let vga = drawBool d 1 5

        let basic name k =
            Spec.Region(name, k, u128 size, addr, priority, enabled)

        match kind with
        | Ram -> Spec.Copy(basic (fresh "ram") RegionKind.Ram, logVga = vga)
        | Rom -> basic (fresh "rom") RegionKind.Rom
        | RomD -> basic (fresh "romd") RegionKind.RomDevice
        | RomDOff -> Spec.Copy(basic (fresh "romdev") RegionKind.RomDevice, romdMode = false)
        | RamDev -> basic (fresh "ramdev") RegionKind.RamDevice
        | Io -> basic (fresh "mmio") RegionKind.Io
        | IoWide ->
            let rules =
                d.Element
                    [| AccessRules(8u, 1u, 8u, false)
                       AccessRules(2u, 2u, 2u, false)
                       AccessRules(4u, 1u, 1u, true) |]

            Spec.Copy(basic (fresh "mmio") RegionKind.Io, access = rules)
        | Alias ->
            // Placed right after an alias of the same block, it sometimes continues that alias's bytes:
            // two flat ranges of one RAM block, host-contiguous, which only a different readonly flag
            // keeps flatview_simplify from merging — what flatview_extend_translation extends a direct
            // mapping across. (A readonly alias changes no access: memory_access_is_direct looks at
            // the RAM region's own flag.)
            let continues = drawBool d 1 1
            let readonly = drawBool d 1 3

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

                Spec.Copy(
                    Spec.Region(fresh "alias", RegionKind.Alias, u128 asize, at, priority, enabled),
                    target = "backing",
                    aliasOffset = next,
                    readonly = flipped
                )
            | None ->
                let off = if aliasOffset >= backingSize then 0UL else aliasOffset
                let asize = min size (backingSize - off)
                Spec.Copy(basic (fresh "alias") RegionKind.Alias, size = u128 asize, target = "backing", aliasOffset = off, readonly = readonly)
        | Nest ->
            let n = d.Choose(1, 3)
            let size' = room addr (max size 0x4000UL)
            let children = drawSequence n (fun acc -> drawRegion (depth + 1) 0UL acc)

            let children =
                children
                |> List.filter (fun (c: RegionSpec) -> u128 c.Addr + c.Size <= u128 size')

            Spec.Copy(basic (fresh "box") RegionKind.Container, size = u128 size', subregions = children)

    /// `n` regions, each drawn seeing those before it (newest first); in drawing order.
    and drawSequence (n: int) (next: RegionSpec list -> RegionSpec) : RegionSpec list =
        let mutable acc = []

        for _ in 1..n do
            acc <- next acc :: acc

        List.rev acc

    let regions = drawSequence count (fun acc -> drawRegion 0 zone acc)

    let system =
        Spec.Copy(Spec.Region("system", RegionKind.Container, two64), subregions = regions)

    let backing = Spec.Region("backing", RegionKind.Ram, u128 backingSize)
    let twoSpaces = drawBool d 1 3
    let window = d.Element [| 0UL; 0x1000UL |]

    let budget =
        match d.Pick [| 6; 1 |] with
        | 0 -> ProfileFacts.DefaultMaxBounceBufferSize
        | _ -> d.Element [| 1UL; 100UL; 8192UL; 65536UL |]

    let dirty =
        match d.Pick [| 6; 1; 1 |] with
        | 0 -> DirtyLogging.Default
        | 1 -> DirtyLogging(false, true)
        | _ -> DirtyLogging(true, false)

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
    LayoutSpec(List.toArray roots, List.toArray spaces, dirty)

/// Addresses worth probing in a layout: region edges, one byte either side, page-aligned neighbours,
/// and a few arbitrary ones; sorted, each once.
let interestingAddresses (layout: LayoutSpec) (space: string) =
    let b = boundaries layout space
    let xs = Array.zeroCreate (6 * b.Length)

    for i in 0 .. b.Length - 1 do
        let p = b.[i]
        xs.[6 * i] <- p
        xs.[6 * i + 1] <- p - 1UL
        xs.[6 * i + 2] <- p + 1UL
        xs.[6 * i + 3] <- p - 0x10UL
        xs.[6 * i + 4] <- p + 0x800UL
        xs.[6 * i + 5] <- p &&& ~~~0xfffUL

    Array.sortInPlace xs
    let mutable n = 0

    for x in xs do
        if n = 0 || xs.[n - 1] <> x then
            xs.[n] <- x
            n <- n + 1

    Array.truncate n xs

/// 1-16 bytes mostly, up to 300 sometimes. The bytes come from one drawn seed (SplitMix64) rather than one
/// draw per byte: the property only needs them distinct and reproducible.
let private drawData (d: Draw) =
    let n =
        match d.Pick [| 3; 1 |] with
        | 0 -> d.Choose(1, 16)
        | _ -> d.Choose(17, 300)

    let seed = d.Choose(Int32.MinValue, Int32.MaxValue)
    let bytes = Draw(uint64 (uint32 seed) * 0x9E3779B97F4A7C15UL)
    Array.init n (fun _ -> byte (bytes.Next()))

let private drawMapLen (d: Draw) =
    match d.Pick [| 3; 4; 2; 1 |] with
    | 0 -> d.Element [| 1UL; 2UL; 4UL; 7UL; 8UL; 16UL; 100UL |]
    | 1 -> d.Element [| 4095UL; 4096UL; 4097UL; 8192UL; 12288UL |]
    | 2 -> uint64 (d.Choose(1, 0x3000))
    | _ -> d.Element [| 0UL; 0x100000UL |]

let private clients = [| "c1"; "c2"; "c3" |]

/// The ten kinds of operation below, by weight.
let private opWeights = [| 8; 4; 6; 2; 2; 2; 1; 2; 1; 3 |]

/// Operations over a layout. Mappings are named m<i> after the position that created them, so removing
/// operations while shrinking never renames the others; operations on a mapping that is not live are skipped.
/// Each operation draws only the values its kind uses.
let private drawOps (layout: LayoutSpec) (d: Draw) : ScenarioOp list =
    let spaces = layout.AddressSpaces |> Seq.map (fun a -> a.Name) |> Array.ofSeq
    let points = spaces |> Array.map (fun s -> interestingAddresses layout s)

    let bounces space p =
        not (isDirect (resolve layout space p) true)

    // where a write mapping bounces, by the oracle: every point, resolved only when a contention motif finds
    // none among a few drawn at random (a fresh layout per case makes resolving them all a large share of a
    // case's time)
    let bouncing =
        spaces |> Array.mapi (fun i s -> lazy (points.[i] |> Array.filter (bounces s)))

    /// A point where a write mapping bounces, uniform over all such points: the first bouncing one of eight
    /// drawn uniformly, else one of the full list (0 when there is none).
    let drawBouncing si =
        let space = spaces.[si]

        if points.[si].Length = 0 then
            0UL
        else
            let tries = Array.init 8 (fun _ -> d.Element points.[si])

            match tries |> Array.tryFind (bounces space) with
            | Some p -> p
            | None ->
                let all = bouncing.[si].Value
                if all.Length = 0 then 0UL else d.Element all

    let drawAddr si =
        match d.Pick [| 9; 1 |] with
        | 0 -> d.Element points.[si]
        | _ -> uint64 (d.Choose(0, Int32.MaxValue)) * 0x9E3779B9UL

    let mapIds = ResizeArray<string>()

    let drawPick () =
        if mapIds.Count = 0 then
            None
        else
            Some mapIds.[d.Choose(0, mapIds.Count - 1)]

    let n = d.Choose(1, 25)
    let ops = ResizeArray<ScenarioOp>()

    for i in 0 .. n - 1 do
        let si = d.Choose(0, spaces.Length - 1)
        let space = spaces.[si]

        match d.Pick opWeights with
        | 0 ->
            let addr = drawAddr si
            let len = drawMapLen d
            let write = drawBool d 3 2
            let id = "m" + string i
            mapIds.Add id
            ops.Add(MapOp(id, space, addr, len, write))
        | 1 ->
            let picked = drawPick ()
            let offset = d.Element [| 0UL; 0UL; 1UL; 3UL; 0x800UL |]

            let fill =
                match d.Pick [| 2; 1 |] with
                | 0 -> None
                | _ -> Some(byte (d.Choose(0, 255)))

            let data = if fill.IsSome then null else drawData d

            match picked with
            | Some id -> ops.Add(WriteMappedOp(id, offset, data, Option.toNullable fill))
            | None -> ()
        | 2 ->
            let picked = drawPick ()

            let access =
                match d.Pick [| 5; 2; 2 |] with
                | 0 -> None
                | 1 -> Some 0UL
                | _ -> d.Element [| Some 1UL; Some 3UL; Some 8UL; Some 4095UL; Some 4096UL |]

            match picked with
            | Some id -> ops.Add(UnmapOp(id, Option.toNullable access))
            | None -> ()
        | 3 ->
            let addr = drawAddr si
            let readLen = d.Element [| 1UL; 4UL; 8UL; 64UL; 4097UL |]
            ops.Add(ReadOp(space, addr, readLen))
        | 4 ->
            let addr = drawAddr si
            let data = drawData d
            ops.Add(WriteOp(space, addr, data))
        | 5 -> ops.Add(RegisterClientOp(space, d.Element clients))
        | 6 -> ops.Add(UnregisterClientOp(space, d.Element clients))
        | 7 -> ops.Add(RunBottomHalvesOp())
        | 9 ->
            // Contention motif: take bounce space, wait for it as a map client (perhaps giving up), release it.
            let contendAddr = drawBouncing si
            let contendLen = d.Element [| 4096UL; 8192UL; 65536UL |]
            let client = d.Element clients
            let withdraw = d.Element [| true; false |]
            let id = "m" + string i
            ops.Add(MapOp(id, space, contendAddr, contendLen, true))
            ops.Add(RegisterClientOp(space, client))

            if withdraw then
                ops.Add(UnregisterClientOp(space, client))

            ops.Add(UnmapOp(id, Nullable 0UL))
            ops.Add(RunBottomHalvesOp())
        | _ ->
            let picked = drawPick ()
            let offset = d.Element [| 0UL; 0UL; 1UL; 3UL; 0x800UL |]

            let len =
                match d.Pick [| 2; 1 |] with
                | 0 -> None
                | _ -> d.Element [| Some 1UL; Some 8UL; Some 4096UL |]

            match picked with
            | Some id -> ops.Add(ReadMappedOp(id, offset, Option.toNullable len))
            | None -> ()

    List.ofSeq ops

let genScenario (profile: Profile) : Gen<Scenario> =
    drawing (fun d ->
        let layout = drawLayout d
        Scenario(profile, layout, List.toArray (drawOps layout d)))

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
