/// The DMA map/unmap property catalogue (issue: reference model of guest memory and DMA). Each property
/// is a named invariant, a function of the implementation under test, judged against the independent
/// oracle in Oracle.fs.
module Conformance.Properties.DmaProperties

open System
open System.Collections.Generic
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.Oracle
open Conformance.Model.Targets
open Conformance.Properties.Verdict

// ---------------------------------------------------------------- helpers over a run

type MapInfo =
    { Op: MapOp
      Mapping: MappingRecord
      Step: int }

let successfulMaps (run: Observation) =
    run.Steps
    |> Seq.choose (fun s ->
        match s.Op, s.Map with
        | (:? MapOp as op), m when m.HasValue && not (isNull m.Value.Mapping) ->
            Some(
                op.Id,
                { Op = op
                  Mapping = m.Value.Mapping
                  Step = s.Index }
            )
        | _ -> None)
    |> dict

/// The address space's Qemu92 bounce budget.
let budgetOf (layout: LayoutSpec) (space: string) =
    (layout.AddressSpaces |> Seq.find (fun a -> a.Name = space)).MaxBounceBufferSize

/// Bounce bytes in use on `space` just before step `s` (what the previous step left; none at the start).
let bounceUsedBefore (run: Observation) (s: StepRecord) (space: string) =
    if s.Index = 0 then
        0UL
    else
        run.Steps.[s.Index - 1].BounceBytesInUse.[space]

/// Live bounce mappings just before step `s`.
let liveBounceBefore (run: Observation) (s: StepRecord) =
    if s.Index = 0 then
        0
    else
        run.Steps.[s.Index - 1].LiveBounceMappings

let executedUnmap (s: StepRecord) =
    match s.Op with
    | :? UnmapOp as u when isNull s.Skipped && s.Unmap.HasValue -> Some u
    | _ -> None

let accessLenOf (u: UnmapOp) (m: MappingRecord) =
    if u.AccessLen.HasValue then u.AccessLen.Value else m.Length

/// Bytes the caller wrote through a mapping before `uptoStep`, by offset.
let callerBytes (run: Observation) (id: string) (uptoStep: int) =
    let bytes = Dictionary<uint64, byte>()

    for s in run.Steps do
        if s.Index < uptoStep && isNull s.Skipped then
            match s.Op with
            | :? WriteMappedOp as w when w.Id = id ->
                let m = run.Mappings.[id]

                let data =
                    if isNull w.Data then
                        Array.create (int (m.Length - w.Offset)) w.FillByte.Value
                    else
                        w.Data

                data |> Array.iteri (fun i b -> bytes.[w.Offset + uint64 i] <- b)
            | _ -> ()

    bytes

/// Checks the device accesses of one direction in a step against QEMU's walk of the transfer's first
/// `limit` bytes (Oracle.chunks): same callbacks, same order, and for writes the caller's bytes. Where
/// QEMU's own walk breaks "exactly these bytes, each once, to the region they belong to" the case is
/// reported as the registered finding (F-DMA-3: an access runs past its section; F-DMA-4: an access is
/// widened to the device's minimum size). Returns verdicts and the bytes each transfer offset carried.
let checkDeviceCoverage
    (layout: LayoutSpec)
    (space: string)
    (addr: uint64)
    (limit: uint64)
    (isWrite: bool)
    (accesses: DeviceAccess seq)
    (caller: IDictionary<uint64, byte>)
    (what: string)
    =
    let verdicts = ResizeArray<Verdict>()
    let carried = Dictionary<uint64, byte>()

    let actual =
        accesses |> Seq.filter (fun a -> a.Access.IsWrite = isWrite) |> List.ofSeq

    let cs = chunks layout space addr limit isWrite
    let expected = deviceAccesses cs isWrite

    let shown (e: ExpectedAccess) =
        sprintf "%s +0x%x size %d" e.Region e.Offset e.Size

    let shownActual (a: DeviceAccess) =
        sprintf "%s +0x%x size %d" a.Region a.Access.Offset a.Access.Size

    if
        actual.Length <> expected.Length
        || List.exists2 (fun (a: DeviceAccess) e -> a.Region <> e.Region || a.Access.Offset <> e.Offset || a.Access.Size <> e.Size) actual expected
    then
        let firstDiff =
            Seq.zip
                (Seq.append (actual |> Seq.map (shownActual >> Some)) (Seq.initInfinite (fun _ -> None)))
                (Seq.append (expected |> Seq.map (shown >> Some)) (Seq.initInfinite (fun _ -> None)))
            |> Seq.take (max actual.Length expected.Length)
            |> Seq.tryFindIndex (fun (x, y) -> x <> y)

        let i = defaultArg firstDiff 0

        let at (xs: string list) =
            if i < xs.Length then xs.[i] else "nothing"

        verdicts.Add(
            Violated(
                sprintf
                    "%s: the devices saw %d %s callbacks, QEMU's walk of the %d bytes at 0x%x makes %d; first difference at #%d: got %s, expected %s"
                    what
                    actual.Length
                    (if isWrite then "write" else "read")
                    limit
                    addr
                    expected.Length
                    (i + 1)
                    (at (actual |> List.map shownActual))
                    (at (expected |> List.map shown))
            )
        )
    else
        for (a, e) in List.zip actual expected do
            for j in 0UL .. uint64 e.Carries - 1UL do
                let k = e.FirstByte + j

                if k < limit then
                    let b = byte (a.Access.Value >>> (8 * int j))
                    carried.[k] <- b

                    if isWrite then
                        match caller.TryGetValue k with
                        | true, wanted when wanted <> b ->
                            verdicts.Add(Violated(sprintf "%s: %s carried 0x%02x for byte %d; the caller wrote 0x%02x" what (shownActual a) b k wanted))
                        | _ -> ()

    if cs |> List.exists (fun c -> not c.Direct && c.Straddles) then
        verdicts.Add(KnownFinding(Findings.mmioAccessPastRegionEnd.Id, what))

    if cs |> List.exists (fun c -> c.Direct && c.Straddles) then
        verdicts.Add(KnownFinding(Findings.romdMapPastSection.Id, what))

    if expected |> List.exists (fun e -> e.Widened) then
        verdicts.Add(KnownFinding(Findings.accessWidened.Id, what))

    List.ofSeq verdicts, carried

let private noCallerBytes = Dictionary<uint64, byte>() :> IDictionary<uint64, byte>

/// The case's judgement: its distinct labels (or `fallback` when it exercised nothing of interest) and
/// its first few verdicts.
let private conclude (fallback: string) (labels: ResizeArray<string>) (verdicts: ResizeArray<Verdict>) =
    judged
        (if labels.Count = 0 then
             [ fallback ]
         else
             List.ofSeq labels |> List.distinct)
        (List.ofSeq verdicts |> List.truncate 3)

let private bucket n =
    if n = 0 then "0"
    elif n = 1 then "1"
    elif n <= 4 then "2-4"
    else "5+"

// ---------------------------------------------------------------- 1. refcount balance

/// With k mappings outstanding on an owner its count is baseline + k; after all unmaps it is back at baseline.
let refcountBalance (target: ITarget) (scenario: Scenario) =
    let run = target.RunAndRelease scenario
    let live = Dictionary<string, string option>()
    let verdicts = ResizeArray<Verdict>()
    let mutable maxOnOne = 0
    let mutable kinds = Set.empty

    for s in run.Steps do
        match s.Op with
        | :? MapOp as op when s.Map.HasValue && not (isNull s.Map.Value.Mapping) ->
            live.[op.Id] <- ownerOf (resolve scenario.Layout op.Space op.Addr)
            kinds <- kinds.Add(string s.Map.Value.Mapping.Kind)
        | :? MapOp when s.Map.HasValue -> kinds <- kinds.Add "failed map"
        | _ -> ()

        match executedUnmap s with
        | Some u -> live.Remove u.Id |> ignore
        | None -> ()

        let expected = live.Values |> Seq.choose id |> Seq.countBy id |> dict

        for KeyValue(owner, count) in s.RefCounts do
            let k =
                match expected.TryGetValue owner with
                | true, k -> k
                | _ -> 0

            maxOnOne <- max maxOnOne k

            if count <> Owner.Baseline + k then
                verdicts.Add(
                    Violated(
                        sprintf
                            "after step %d (%s): owner %s has %d references, expected %d (baseline %d + %d live mappings)"
                            (s.Index + 1)
                            (ScenarioTrace.Describe s.Op)
                            owner
                            count
                            (Owner.Baseline + k)
                            Owner.Baseline
                            k
                    )
                )

    let labels =
        [ sprintf "max live mappings on one owner: %s" (bucket maxOnOne) ]
        @ (kinds |> Set.toList |> List.map (sprintf "has %s"))

    judged labels (List.ofSeq verdicts |> List.truncate 3)

// ---------------------------------------------------------------- 2. write-back on unmap

/// A non-direct write mapping produces no device write before unmap, and exactly access_len bytes at
/// unmap, in address order; access_len 0 writes nothing.
let writeBackOnUnmap (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let maps = successfulMaps run
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()

    for KeyValue(id, info) in maps do
        let m = info.Mapping

        if m.IsWrite && m.Kind = MappingKind.Bounce then
            let mapStep = run.Steps.[info.Step]

            if mapStep.DeviceAccesses |> Seq.exists (fun a -> a.Access.IsWrite) then
                verdicts.Add(
                    Violated(sprintf "map %s (write, bounce) wrote to a device at map time: %A" id (mapStep.DeviceAccesses |> Seq.map string |> List.ofSeq))
                )

            for s in run.Steps do
                match s.Op with
                | :? WriteMappedOp as w when w.Id = id && s.DeviceAccesses.Count > 0 ->
                    verdicts.Add(Violated(sprintf "writing through bounce mapping %s touched a device before unmap" id))
                | _ -> ()

                match executedUnmap s with
                | Some u when u.Id = id ->
                    let accessLen = accessLenOf u m

                    labels.Add(
                        if accessLen = 0UL then "access_len 0"
                        elif accessLen < m.Length then "partial access_len"
                        else "full access_len"
                    )

                    let caller = callerBytes run id s.Index

                    let vs, carried =
                        checkDeviceCoverage scenario.Layout info.Op.Space m.Addr accessLen true s.DeviceAccesses caller (sprintf "unmap %s" id)

                    verdicts.AddRange vs

                    if carried.Count > 0 then
                        labels.Add "write-back reached a device"
                | _ -> ()

    conclude "no bounce write mapping" labels verdicts

// ---------------------------------------------------------------- 3. read at map

/// A non-direct read mapping reads the device at map time (the buffer holds what the device returned);
/// its unmap touches no device and dirties nothing.
let readAtMap (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let maps = successfulMaps run
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()

    for KeyValue(id, info) in maps do
        let m = info.Mapping

        if not m.IsWrite && m.Kind = MappingKind.Bounce then
            let mapStep = run.Steps.[info.Step]

            if mapStep.DeviceAccesses |> Seq.exists (fun a -> a.Access.IsWrite) then
                verdicts.Add(Violated(sprintf "read mapping %s wrote to a device" id))

            let vs, carried =
                checkDeviceCoverage scenario.Layout info.Op.Space m.Addr m.Length false mapStep.DeviceAccesses noCallerBytes (sprintf "map %s" id)

            verdicts.AddRange vs

            labels.Add(
                if carried.Count > 0 then
                    "bounce read filled from a device"
                else
                    "bounce read of ROM-less hole or RAM tail"
            )

            for s in run.Steps do
                match s.Op with
                | :? ReadMappedOp as r when r.Id = id && isNull s.Skipped && not (isNull s.BytesRead) ->
                    // bytes the caller overwrote through the (read) mapping are its own business
                    let overwritten = callerBytes run id s.Index

                    s.BytesRead
                    |> Array.iteri (fun i b ->
                        match carried.TryGetValue(r.Offset + uint64 i) with
                        | true, fromDevice when fromDevice <> b && not (overwritten.ContainsKey(r.Offset + uint64 i)) ->
                            verdicts.Add(
                                Violated(
                                    sprintf
                                        "reading through %s gave 0x%02x at byte %d; the device returned 0x%02x at map time"
                                        id
                                        b
                                        (r.Offset + uint64 i)
                                        fromDevice
                                )
                            )
                        | _ -> ())
                | _ -> ()

                match executedUnmap s with
                | Some u when u.Id = id ->
                    if s.DeviceAccesses.Count > 0 then
                        verdicts.Add(Violated(sprintf "unmap of read mapping %s accessed a device: %s" id (string s.DeviceAccesses.[0])))

                    if s.NewlyDirty.Count > 0 then
                        verdicts.Add(Violated(sprintf "unmap of read mapping %s dirtied memory" id))
                | _ -> ()

    conclude "no bounce read mapping" labels verdicts

// ---------------------------------------------------------------- 4. dirty exactness

let activeClients (layout: LayoutSpec) (region: RegionSpec) =
    [ if region.LogVga then
          DirtyClient.Vga
      if layout.Dirty.Code then
          DirtyClient.Code
      if layout.Dirty.Migration then
          DirtyClient.Migration ]

let private pagesOf (startOffset: uint64) (len: uint64) =
    if len = 0UL then
        Set.empty
    else
        set [ startOffset / 4096UL .. (startOffset + len - 1UL) / 4096UL ]

/// Pages a write of `len` bytes at `addr` through dispatch (address_space_write) dirties: the pages of
/// the RAM chunks of QEMU's walk. Also whether that walk skips RAM bytes an I/O access ran over (F-DMA-3).
let private expectedWritePages (layout: LayoutSpec) (space: string) (addr: uint64) (len: uint64) =
    let cs = chunks layout space addr len true

    let pages =
        seq {
            for c in cs do
                if c.Direct then
                    let h = c.Hit.Value

                    for cl in activeClients layout h.Region do
                        for p in pagesOf c.Offset c.Length do
                            yield struct (cl, h.Region.Name, p)
        }
        |> Set.ofSeq

    let swallowsRam = cs |> List.exists (fun c -> not c.Direct && c.Straddles)
    pages, swallowsRam

/// A write unmap of RAM dirties exactly the pages of [addr, addr+access_len) in every active client;
/// read unmaps dirty nothing; one-at-a-time writes dirty the pages of the RAM bytes they write.
let dirtyExactness (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let maps = successfulMaps run
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()
    let dirtySoFar = HashSet<struct (DirtyClient * string * uint64)>()

    for s in run.Steps do
        let newly =
            s.NewlyDirty
            |> Seq.map (fun d -> struct (d.Client, d.Block, d.Page))
            |> Set.ofSeq

        let expected, allowedFinding, what =
            match s.Op, executedUnmap s with
            | _, Some u ->
                let info = maps.[u.Id]
                let m = info.Mapping
                let accessLen = accessLenOf u m

                if not m.IsWrite then
                    Set.empty, Set.empty, "read unmap"
                elif m.Kind = MappingKind.Direct then
                    let hit = resolve scenario.Layout info.Op.Space m.Addr

                    match hit with
                    | Some h ->
                        let clients = activeClients scenario.Layout h.Region

                        let exp =
                            set
                                [ for c in clients do
                                      for p in pagesOf h.Offset accessLen -> struct (c, h.Region.Name, p) ]

                        let finding =
                            if accessLen = 0UL && h.Offset % 4096UL <> 0UL then
                                set [ for c in clients -> struct (c, h.Region.Name, h.Offset / 4096UL) ]
                            else
                                Set.empty

                        exp,
                        finding,
                        (if accessLen = 0UL then
                             "direct write unmap, access_len 0"
                         else
                             "direct write unmap")
                    | None -> Set.empty, Set.empty, "direct write unmap"
                else if accessLen = 0UL then
                    Set.empty, Set.empty, "bounce write unmap"
                else
                    let pages, swallows =
                        expectedWritePages scenario.Layout info.Op.Space m.Addr accessLen

                    if swallows then
                        verdicts.Add(KnownFinding(Findings.mmioAccessPastRegionEnd.Id, sprintf "step %d" (s.Index + 1)))

                    pages, Set.empty, "bounce write unmap"
            | (:? WriteOp as w), _ when isNull s.Skipped && w.Data.Length > 0 ->
                let pages, swallows =
                    expectedWritePages scenario.Layout w.Space w.Addr (uint64 w.Data.Length)

                if swallows then
                    verdicts.Add(KnownFinding(Findings.mmioAccessPastRegionEnd.Id, sprintf "step %d" (s.Index + 1)))

                pages, Set.empty, "one-at-a-time write"
            | _ -> Set.empty, Set.empty, "other"

        if what <> "other" then
            labels.Add what

        let unexpected = newly - expected
        let finding = Set.intersect unexpected allowedFinding

        if not finding.IsEmpty then
            verdicts.Add(KnownFinding(Findings.zeroLengthDirty.Id, sprintf "step %d" (s.Index + 1)))

        let unexpected = unexpected - allowedFinding

        if not unexpected.IsEmpty then
            verdicts.Add(
                Violated(
                    sprintf
                        "step %d (%s) dirtied %A, which it did not write"
                        (s.Index + 1)
                        (ScenarioTrace.Describe s.Op)
                        (unexpected |> Set.toList |> List.truncate 4)
                )
            )

        for d in newly do
            dirtySoFar.Add d |> ignore

        let missing = expected |> Set.filter (fun d -> not (dirtySoFar.Contains d))

        if not missing.IsEmpty then
            verdicts.Add(
                Violated(
                    sprintf
                        "step %d (%s) left %A clean, though it wrote there"
                        (s.Index + 1)
                        (ScenarioTrace.Describe s.Op)
                        (missing |> Set.toList |> List.truncate 4)
                )
            )

    conclude "no writes" labels verdicts

// ---------------------------------------------------------------- 5. map length

/// A direct mapping is as long as the same region stays host-contiguous (never past a section end, the
/// request or the RAM block); a bounce mapping gets min(request, page) under Qemu72 and min(request,
/// remaining budget) under Qemu92; a map fails only for zero length or when bounce space is exhausted.
let mapLength (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()

    for s in run.Steps do
        match s.Op with
        | :? MapOp as op when isNull s.Skipped && s.Map.HasValue ->
            let r = s.Map.Value
            let hit = resolve scenario.Layout op.Space op.Addr
            let direct = isDirect hit op.Write

            let fail msg =
                verdicts.Add(Violated(sprintf "step %d (%s): %s" (s.Index + 1) (ScenarioTrace.Describe op) msg))

            if op.Len = 0UL then
                labels.Add "zero length"

                if not (isNull r.Mapping) || r.Failure <> MapFailure.ZeroLength then
                    fail "a zero-length map must return NULL without mapping"
            elif isNull r.Mapping then
                labels.Add "map failed"

                let exhausted =
                    match scenario.Profile with
                    | Profile.Qemu72 -> liveBounceBefore run s >= 1
                    | _ -> bounceUsedBefore run s op.Space >= budgetOf scenario.Layout op.Space

                if direct then
                    fail "a direct map must never fail"
                elif not exhausted then
                    fail "the map failed although bounce space was available"
            else
                let m = r.Mapping

                if r.Length <> m.Length || m.Length = 0UL || m.Length > op.Len then
                    fail (sprintf "granted %d bytes for a request of %d" m.Length op.Len)

                if (m.Kind = MappingKind.Direct) <> direct then
                    fail (
                        sprintf
                            "mapped as %A, but the region (%s) is %s for %s"
                            m.Kind
                            (hit
                             |> Option.map (fun h -> string h.Region.Kind)
                             |> Option.defaultValue "unassigned")
                            (if direct then "direct" else "not direct")
                            (if op.Write then "writes" else "reads")
                    )
                elif direct then
                    let run = contiguousRun scenario.Layout op.Space op.Addr op.Len
                    let h = hit.Value
                    // Only RAM is clamped to its section (address_space_translate_internal); a romd device is
                    // clamped at the end of its RAMBlock alone (qemu_ram_ptr_length).
                    let expected =
                        if isRam hit then
                            run
                        else
                            min op.Len (low64 (h.Region.Size - u128 h.Offset))

                    labels.Add(
                        if expected < op.Len then
                            "direct, clipped"
                        else
                            "direct, whole request"
                    )
                    // flatview_extend_translation's edge: the mapping runs on into a neighbour that continues
                    // the same block (flat ranges only a readonly flag keeps apart)
                    let cuts =
                        boundaries scenario.Layout op.Space
                        |> Array.filter (fun p -> p > op.Addr && u128 p < u128 op.Addr + u128 m.Length)

                    if
                        cuts
                        |> Array.exists (fun p ->
                            match resolve scenario.Layout op.Space p with
                            | Some n ->
                                n.Region.Name = h.Region.Name
                                && n.Offset = h.Offset + (p - op.Addr)
                                && n.Region.Kind = RegionKind.Ram
                            | None -> false)
                    then
                        labels.Add "direct, extended past a region edge into the same RAM"

                    if m.Length <> expected then
                        fail (sprintf "direct mapping of %d bytes; expected %d (the region stays contiguous for %d)" m.Length expected run)
                    elif expected > run then
                        verdicts.Add(KnownFinding(Findings.romdMapPastSection.Id, sprintf "map %s" op.Id))

                    if m.Region <> hit.Value.Region.Name || m.Xlat <> hit.Value.Offset then
                        fail (sprintf "direct mapping points at %s+0x%x, the address is %s+0x%x" m.Region m.Xlat hit.Value.Region.Name hit.Value.Offset)
                else
                    // address_space_translate_internal clamps RAM-backed regions (ROM too) to their section first
                    let request =
                        if isRam hit then
                            contiguousRun scenario.Layout op.Space op.Addr op.Len
                        else
                            op.Len

                    let expected =
                        match scenario.Profile with
                        | Profile.Qemu72 -> min request ProfileFacts.TargetPageSize
                        | _ -> min request (budgetOf scenario.Layout op.Space - bounceUsedBefore run s op.Space)

                    labels.Add(
                        if expected < op.Len then
                            "bounce, partial grant"
                        else
                            "bounce, whole request"
                    )

                    if m.Length <> expected then
                        fail (sprintf "bounce mapping of %d bytes; expected %d" m.Length expected)
                    // F-DMA-2: does the bounce cover more than the first section?
                    let first = hit

                    let crosses =
                        boundaries scenario.Layout op.Space
                        |> Seq.exists (fun p ->
                            p > op.Addr
                            && u128 p < u128 op.Addr + u128 m.Length
                            && (let h = resolve scenario.Layout op.Space p

                                match first, h with
                                | None, None -> false
                                | Some a, Some b ->
                                    not (Object.ReferenceEquals(a.Region, b.Region))
                                    || b.Offset <> a.Offset + (p - op.Addr)
                                | _ -> true))

                    if crosses then
                        verdicts.Add(KnownFinding(Findings.bounceSpansSections.Id, sprintf "map %s" op.Id))
        | _ -> ()

    conclude "no maps" labels verdicts

// ---------------------------------------------------------------- 6. bounce exclusivity

/// Qemu72: at most one bounce mapping in the whole system; Qemu92: bounce bytes in use per address space
/// equal the live bounce mappings' lengths and never exceed the budget; a map that failed for lack of
/// space succeeds once everything is released.
let bounceExclusivity (target: ITarget) (scenario: Scenario) =
    use session = target.Open(scenario.Profile, scenario.Layout)

    for op in scenario.Ops do
        session.Apply op |> ignore

    for id in session.Observe().Memory.LiveIds do
        session.Apply(UnmapOp(id, Nullable())) |> ignore

    session.Apply(RunBottomHalvesOp()) |> ignore
    let run = session.Observe()
    let verdicts = ResizeArray<Verdict>()
    let live = Dictionary<string, MappingRecord>()
    let mutable peak = 0

    for s in run.Steps do
        match s.Op with
        | :? MapOp as op when
            s.Map.HasValue
            && not (isNull s.Map.Value.Mapping)
            && s.Map.Value.Mapping.Kind = MappingKind.Bounce
            ->
            live.[op.Id] <- s.Map.Value.Mapping
        | _ -> ()

        match executedUnmap s with
        | Some u -> live.Remove u.Id |> ignore
        | None -> ()

        peak <- max peak live.Count

        let fail msg =
            verdicts.Add(Violated(sprintf "after step %d (%s): %s" (s.Index + 1) (ScenarioTrace.Describe s.Op) msg))

        match scenario.Profile with
        | Profile.Qemu72 ->
            if s.LiveBounceMappings > 1 then
                fail (sprintf "%d bounce mappings are live at once" s.LiveBounceMappings)

            let expected = live.Values |> Seq.sumBy (fun m -> m.Length)

            for KeyValue(space, used) in s.BounceBytesInUse do
                if used <> expected then
                    fail (sprintf "the global bounce buffer reports %d bytes in use; live bounce mappings hold %d" used expected)
        | _ ->
            for a in scenario.Layout.AddressSpaces do
                let used = s.BounceBytesInUse.[a.Name]

                let expected =
                    live.Values
                    |> Seq.filter (fun m -> m.Space = a.Name)
                    |> Seq.sumBy (fun m -> m.Length)

                if used > a.MaxBounceBufferSize then
                    fail (sprintf "%s has %d bounce bytes in use, over its budget of %d" a.Name used a.MaxBounceBufferSize)

                if used <> expected then
                    fail (sprintf "%s accounts %d bounce bytes; live bounce mappings hold %d" a.Name used expected)
    // Everything is released now: every map that failed for lack of space must succeed.
    let failed =
        run.Steps
        |> Seq.choose (fun s ->
            match s.Op with
            | :? MapOp as op when s.Map.HasValue && s.Map.Value.Failure = MapFailure.NoBounceSpace -> Some op
            | _ -> None)
        |> List.ofSeq

    for op in failed |> List.truncate 3 do
        let retry =
            session.Apply(MapOp(op.Id + "-retry", op.Space, op.Addr, op.Len, op.Write))

        if not retry.Map.HasValue || not retry.Map.Value.Succeeded then
            verdicts.Add(Violated(sprintf "map %s failed for lack of bounce space and still fails after every mapping was released" op.Id))
        else
            session.Apply(UnmapOp(op.Id + "-retry", Nullable 0UL)) |> ignore

    let labels =
        [ sprintf "peak live bounce mappings: %s" (bucket peak)
          (if failed.IsEmpty then
               "no contention"
           else
               "contention: a map failed and was retried") ]

    judged labels (List.ofSeq verdicts |> List.truncate 3)

// ---------------------------------------------------------------- 7. map clients

/// A registered client is woken (its bottom half scheduled, then run) when bounce space frees, or at
/// once if space is free when it registers; once per registration; never after it unregistered.
let mapClients (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let maps = successfulMaps run
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()

    let scopeOf (space: string) =
        if scenario.Profile = Profile.Qemu72 then
            "<global>"
        else
            space

    let registered = Dictionary<string, ResizeArray<string>>()

    let clients scope =
        match registered.TryGetValue scope with
        | true, l -> l
        | _ ->
            let l = ResizeArray<string>()
            registered.[scope] <- l
            l

    let pending = ResizeArray<string>()

    let wakeAll scope =
        let l = clients scope
        let woken = List.ofSeq l
        l.Clear()
        woken

    for s in run.Steps do
        let expectedScheduled, expectedRan =
            if not (isNull s.Skipped) then
                [], []
            else
                match s.Op with
                | :? RegisterClientOp as c ->
                    (clients (scopeOf c.Space)).Insert(0, c.Client)

                    let capacity =
                        if scenario.Profile = Profile.Qemu72 then
                            liveBounceBefore run s = 0
                        else
                            bounceUsedBefore run s c.Space < budgetOf scenario.Layout c.Space

                    if capacity then
                        labels.Add "woken at registration"
                        wakeAll (scopeOf c.Space), []
                    else
                        labels.Add "waits for space"
                        [], []
                | :? UnregisterClientOp as c ->
                    let l = clients (scopeOf c.Space)

                    if l.Remove c.Client then
                        labels.Add "unregistered while waiting"

                    [], []
                | :? RunBottomHalvesOp ->
                    let ran = List.ofSeq pending
                    pending.Clear()
                    [], ran
                | _ ->
                    match executedUnmap s with
                    | Some u when maps.[u.Id].Mapping.Kind = MappingKind.Bounce ->
                        let woken = wakeAll (scopeOf maps.[u.Id].Op.Space)

                        if not woken.IsEmpty then
                            labels.Add "woken by a bounce unmap"

                        woken, []
                    | _ -> [], []

        for c in expectedScheduled do
            if not (pending.Contains c) then
                pending.Add c

        // the clients a step scheduled (or ran), in any order, against the expected ones
        let expect (what: string) (actual: string seq) (expected: string list) =
            if List.sort (List.ofSeq actual) <> List.sort expected then
                verdicts.Add(
                    Violated(
                        sprintf
                            "step %d (%s) %s [%s]; expected [%s]"
                            (s.Index + 1)
                            (ScenarioTrace.Describe s.Op)
                            what
                            (String.Join(", ", actual))
                            (String.Join(", ", expected))
                    )
                )

        expect "scheduled" s.Scheduled expectedScheduled
        expect "ran" s.Ran expectedRan

        if (s.Ran |> Seq.distinct |> Seq.length) <> s.Ran.Count then
            verdicts.Add(Violated(sprintf "step %d ran a client twice" (s.Index + 1)))

    conclude "no client activity" labels verdicts

// ---------------------------------------------------------------- 8. two approaches agree

/// Moves bytes with map/write-through/unmap on one instance and with address_space_read/write on
/// another; whenever the maps succeed, memory, device storage, dirty bits and the bytes read agree.
let approachesAgree (target: ITarget) (scenario: Scenario) =
    use a = target.Open(scenario.Profile, scenario.Layout)
    use b = target.Open(scenario.Profile, scenario.Layout)
    let verdicts = ResizeArray<Verdict>()
    let mutable mapsFailed = false
    let mutable transfers = 0
    // QEMU's walk can let an I/O access run over the next section (F-DMA-3); the two approaches cut a
    // transfer differently (mappings end at page/budget limits), so where that happens they may disagree.
    // Likewise a romd copy that runs past its section (F-DMA-5) and an access widened to a device's
    // minimum size (F-DMA-4) depend on where a transfer is cut.
    let walkFindings = HashSet<string>()

    let noteWalk (space: string) (addr: uint64) (len: uint64) (isWrite: bool) =
        let cs = chunks scenario.Layout space addr len isWrite

        if cs |> List.exists (fun c -> not c.Direct && c.Straddles) then
            walkFindings.Add Findings.mmioAccessPastRegionEnd.Id |> ignore

        if cs |> List.exists (fun c -> c.Direct && c.Straddles) then
            walkFindings.Add Findings.romdMapPastSection.Id |> ignore

        if deviceAccesses cs isWrite |> List.exists (fun e -> e.Widened) then
            walkFindings.Add Findings.accessWidened.Id |> ignore

    let disagreement (msg: string) =
        if walkFindings.Count > 0 then
            for id in walkFindings do
                verdicts.Add(KnownFinding(id, msg))
        else
            verdicts.Add(Violated msg)

    let known = scenario.Layout.AddressSpaces |> Seq.map (fun a -> a.Name) |> Set.ofSeq
    // a mapping is used in two pieces, the second at an offset, as a device walking a buffer would
    let pieces (len: int) =
        if len >= 2 then
            [ 0, len / 2; len / 2, len - len / 2 ]
        else
            [ 0, len ]

    /// Maps [addr + done, addr + total) piece by piece as a device would, calling `use` on each mapping
    /// (its id, granted length and offset into the transfer), then unmapping it whole.
    let throughMappings (space: string) (addr: uint64) (total: int) (isWrite: bool) (useMapping: string -> int -> int -> unit) =
        let mutable doneBytes = 0

        while doneBytes < total && not mapsFailed do
            let step =
                a.Apply(MapOp("t", space, addr + uint64 doneBytes, uint64 (total - doneBytes), isWrite))

            match Option.ofNullable step.Map with
            | Some m when m.Succeeded ->
                if m.Mapping.Kind = MappingKind.Bounce then
                    noteWalk space m.Mapping.Addr m.Length isWrite

                useMapping "t" (int m.Length) doneBytes
                a.Apply(UnmapOp("t", Nullable m.Length)) |> ignore
                doneBytes <- doneBytes + int m.Length
            | _ -> mapsFailed <- true

    for op in scenario.Ops do
        match op with
        | :? WriteOp as w when w.Data.Length > 0 && known.Contains w.Space ->
            transfers <- transfers + 1

            throughMappings w.Space w.Addr w.Data.Length true (fun id len doneBytes ->
                for off, n in pieces len do
                    a.Apply(WriteMappedOp(id, uint64 off, w.Data.[doneBytes + off .. doneBytes + off + n - 1], Nullable()))
                    |> ignore)

            noteWalk w.Space w.Addr (uint64 w.Data.Length) true
            b.Apply(WriteOp(w.Space, w.Addr, w.Data)) |> ignore
        | :? ReadOp as rd when rd.Len > 0UL && known.Contains rd.Space ->
            transfers <- transfers + 1
            let viaMap = Array.zeroCreate<byte> (int rd.Len)

            throughMappings rd.Space rd.Addr (int rd.Len) false (fun id len doneBytes ->
                for off, n in pieces len do
                    let got = a.Apply(ReadMappedOp(id, uint64 off, Nullable(uint64 n))).BytesRead
                    Array.blit got 0 viaMap (doneBytes + off) n)

            noteWalk rd.Space rd.Addr rd.Len false
            let viaRead = b.Apply(ReadOp(rd.Space, rd.Addr, rd.Len)).BytesRead

            if not mapsFailed && not (isNull viaRead) && viaMap <> viaRead then
                disagreement (
                    sprintf
                        "reading 0x%x len %d: through mappings %s, with address_space_read %s"
                        rd.Addr
                        rd.Len
                        (ScenarioTrace.Hex viaMap)
                        (ScenarioTrace.Hex viaRead)
                )
        | _ -> ()

    if not mapsFailed then
        let ca = a.Contents()
        let cb = b.Contents()

        for struct (region, pa), struct (_, pb) in Seq.zip ca.ModifiedPages cb.ModifiedPages do
            if List.ofSeq pa <> List.ofSeq pb then
                disagreement (
                    sprintf
                        "region %s differs: map/unmap left %A, read/write left %A"
                        region
                        (pa |> Seq.map (fun struct (p, _) -> p) |> List.ofSeq)
                        (pb |> Seq.map (fun struct (p, _) -> p) |> List.ofSeq)
                )

        for c in Enum.GetValues<DirtyClient>() do
            let da = ca.Dirty.[c] |> Set.ofSeq
            let db = cb.Dirty.[c] |> Set.ofSeq

            if da <> db then
                disagreement (
                    sprintf "dirty %A pages differ: map/unmap %A, read/write %A" c (Set.toList da |> List.truncate 6) (Set.toList db |> List.truncate 6)
                )

    let labels =
        [ sprintf "transfers: %s" (bucket transfers)
          (if mapsFailed then
               "a map failed (no comparison)"
           else
               "compared") ]

    judged labels (List.ofSeq verdicts |> List.truncate 3)

// ---------------------------------------------------------------- 9. no invented bytes

/// When access_len does not exceed what the caller wrote through a bounce write mapping, every byte
/// written back was produced by the caller; bytes the caller never wrote that do reach memory are
/// marked (never-produced in Qemu72, zero-fill in Qemu92), exactly as many as there are.
let noInventedBytes (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let maps = successfulMaps run
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()

    for s in run.Steps do
        match executedUnmap s with
        | Some u when maps.[u.Id].Mapping.Kind = MappingKind.Bounce && maps.[u.Id].Mapping.IsWrite ->
            let info = maps.[u.Id]
            let m = info.Mapping
            let accessLen = accessLenOf u m
            let written = callerBytes run u.Id s.Index

            let unwritten =
                if accessLen = 0UL then
                    0
                else
                    seq { 0UL .. accessLen - 1UL }
                    |> Seq.filter (fun k -> not (written.ContainsKey k))
                    |> Seq.length

            let r = s.Unmap.Value
            let marked = r.NeverProducedBytesWrittenBack + r.ZeroFillBytesWrittenBack

            labels.Add(
                if unwritten = 0 then
                    "caller covered access_len"
                else
                    "caller left bytes unwritten"
            )

            if marked <> unwritten then
                verdicts.Add(
                    Violated(
                        sprintf
                            "unmap %s (access_len %d): %d bytes reached memory that the caller never wrote, %d of them marked"
                            u.Id
                            accessLen
                            (max marked unwritten)
                            marked
                    )
                )

            let _, carried =
                checkDeviceCoverage scenario.Layout info.Op.Space m.Addr accessLen true s.DeviceAccesses noCallerBytes "no-invented-bytes"

            let invented =
                carried.Keys |> Seq.filter (fun k -> not (written.ContainsKey k)) |> Seq.length

            if invented > 0 && marked = 0 then
                verdicts.Add(Violated(sprintf "unmap %s delivered %d bytes the caller never wrote, unmarked" u.Id invented))
        | _ -> ()
    // write-backs made by a device model (virtio), not by a scenario's unmap: F-BLK-2 when unproduced
    let byOps =
        run.Steps
        |> Seq.sumBy (fun s ->
            if s.Unmap.HasValue then
                int64 (
                    s.Unmap.Value.NeverProducedBytesWrittenBack
                    + s.Unmap.Value.ZeroFillBytesWrittenBack
                )
            else
                0L)

    if run.Memory.UnproducedBytesWrittenBack > byOps then
        verdicts.Add(KnownFinding(Findings.blkUninitialisedWriteBack.Id, sprintf "%d bytes" (run.Memory.UnproducedBytesWrittenBack - byOps)))

    conclude "no bounce write-back" labels verdicts

// ---------------------------------------------------------------- 10. flattening

/// Translate agrees with a naive "topmost enabled region by priority" search for every probed address.
let flattening (target: ITarget) (scenario: Scenario) =
    use session = target.Open(scenario.Profile, scenario.Layout)
    let views = session.FlatViews()
    let verdicts = ResizeArray<Verdict>()
    let mutable probes = 0

    for space in scenario.Layout.AddressSpaces do
        let view = views.[space.Name]
        // the range holding p, if any (a hole is io_mem_unassigned)
        let translate (p: uint64) =
            view
            |> Seq.tryFind (fun r -> p >= r.Start && UInt128(0UL, p - r.Start) < r.Size)
            |> Option.map (fun r -> r.Region, r.Offset + (p - r.Start))

        for p in Generators.interestingAddresses scenario.Layout space.Name |> Array.truncate 400 do
            probes <- probes + 1

            match resolve scenario.Layout space.Name p, translate p with
            | None, Some(region, xlat) -> verdicts.Add(Violated(sprintf "%s 0x%x: FlatView says %s+0x%x, nothing is mapped there" space.Name p region xlat))
            | Some h, None ->
                verdicts.Add(
                    Violated(sprintf "%s 0x%x: FlatView says nothing is mapped there, the topmost region is %s+0x%x" space.Name p h.Region.Name h.Offset)
                )
            | Some h, Some(region, xlat) when region <> h.Region.Name || xlat <> h.Offset ->
                verdicts.Add(Violated(sprintf "%s 0x%x: FlatView says %s+0x%x, the topmost region is %s+0x%x" space.Name p region xlat h.Region.Name h.Offset))
            | _ -> ()

    let regions = scenario.Layout.AllRegions() |> Seq.length

    let aliases =
        scenario.Layout.AllRegions()
        |> Seq.exists (fun r -> r.Kind = RegionKind.Alias && r.Name <> "dev-window")

    let priorities =
        scenario.Layout.AllRegions()
        |> Seq.map (fun r -> r.Priority)
        |> Seq.distinct
        |> Seq.length

    let labels =
        [ sprintf "regions: %s" (bucket regions)
          (if aliases then "with aliases" else "no aliases")
          (if priorities > 1 then
               "mixed priorities"
           else
               "one priority") ]

    judged labels (List.ofSeq verdicts |> List.truncate 3)
