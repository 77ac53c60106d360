/// The split-virtqueue property catalogue (issue: split virtqueue and a virtio-blk reference device).
/// Tags name the VIRTIO 1.2 section and the QEMU function each invariant comes from.
module Conformance.Properties.VirtioProperties

open System
open System.Collections.Generic
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Properties.Oracle
open Conformance.Model.Targets
open Conformance.Properties.Observations
open Conformance.Properties.Verdict
open Conformance.Properties.VirtioCases

let private conclude (labels: ResizeArray<string>) (verdicts: ResizeArray<Verdict>) =
    judged (List.ofSeq labels |> List.distinct) (List.ofSeq verdicts |> List.truncate 3)

let private describe (s: StepRecord) =
    sprintf "step %d (%s)" (s.Index + 1) (ScenarioTrace.Describe s.Op)

/// Runs the case, then detaches every element still outstanding (len 0), as a device reset would.
let runAndDetachAll (target: ITarget) (scenario: Scenario) =
    use session = target.Open(scenario.Profile, scenario.Layout)

    for op in scenario.Ops do
        session.Apply op |> ignore

    for name, _ in outstanding (session.Observe()) do
        session.Apply(ReleaseOp(name, "detach", 0u)) |> ignore

    session.Observe()

// ---------------------------------------------------------------- VQ1 element conservation

/// Every popped element is released once; inuse = popped − released; used.idx advances by exactly the
/// pushes, mod 2^16. (VIRTIO 1.2 §2.7.8; hw/virtio/virtio.c:virtqueue_split_pop, virtqueue_flush)
let elementConservation (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()
    let mutable popped, released, pushes = 0, 0, 0
    let mutable lastAvail = None
    // since the last reset (virtio_reset: indices, inuse and broken start over, R5)
    let mutable brokenBefore = false
    let mutable afterReset = false

    for s in run.Steps do
        match Option.ofObj s.Virtio with
        | None -> ()
        | Some v when (s.Op :? VirtioResetOp) && isNull s.Skipped ->
            labels.Add "reset and set up again"

            if v.InUse <> 0 || v.LastAvailIdx <> 0us || v.UsedIdx <> 0us || v.Broken then
                verdicts.Add(
                    Violated(
                        sprintf
                            "%s: after a reset the queue has inuse %d, last_avail_idx %d, used idx %d, broken %b (expected all zero, working)"
                            (describe s)
                            v.InUse
                            v.LastAvailIdx
                            v.UsedIdx
                            v.Broken
                    )
                )

            popped <- 0
            released <- 0
            pushes <- 0
            lastAvail <- None
            brokenBefore <- false
            afterReset <- true
        | Some v when (s.Op :? VirtioSetupOp) && afterReset ->
            // set up again: a working device with nothing of its former life (virtio_reset clears the errors)
            if not v.Broken && not (isNull v.Error) then
                verdicts.Add(Violated(sprintf "%s: the device set up again after a reset still reports \"%s\"" (describe s) v.Error))

            afterReset <- false
        | Some v ->
            if v.Popped <> null then
                popped <- popped + 1

            match s.Op with
            | :? ReleaseOp as r when isNull s.Skipped ->
                released <- released + 1

                if r.How = "push" && not brokenBefore then
                    pushes <- pushes + 1

                labels.Add("released by " + r.How)
                // virtqueue_unpop steps last_avail_idx back by one, so the next pop fetches a chain again;
                // push and detach leave it alone
                match lastAvail with
                | Some(before: uint16) ->
                    let expected = if r.How = "unpop" then before - 1us else before

                    if v.LastAvailIdx <> expected then
                        verdicts.Add(Violated(sprintf "%s: last_avail_idx went from %d to %d (expected %d)" (describe s) before v.LastAvailIdx expected))
                | None -> ()
            | _ -> ()

            lastAvail <- Some v.LastAvailIdx

            if v.InUse <> popped - released then
                verdicts.Add(Violated(sprintf "%s: inuse is %d, but %d elements were popped and %d released" (describe s) v.InUse popped released))

            if v.UsedIdx <> uint16 pushes then
                verdicts.Add(Violated(sprintf "%s: used idx is %d after %d pushes" (describe s) v.UsedIdx pushes))

            if v.Broken then
                labels.Add "device broke"
                brokenBefore <- true

    labels.Add(
        sprintf
            "popped %s"
            (if popped = 0 then "0"
             elif popped < 4 then "1-3"
             else "4+")
    )

    conclude labels verdicts

// ---------------------------------------------------------------- VQ2 mapping balance

/// Once every element is released (or the device broke, including on every pop error path), no mapping
/// is live, no bounce space is held and every owner's references are back where they were after setup.
/// (hw/virtio/virtio.c:virtqueue_undo_map_desc, virtqueue_unmap_sg; CVE-2022-26353, CVE-2022-26354)
let mappingBalance (target: ITarget) (scenario: Scenario) =
    let run = runAndDetachAll target scenario
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()
    let afterSetup = run.Steps.[0].RefCounts
    let final = run.Steps.[run.Steps.Count - 1]

    if run.Memory.LiveMappings.Count > 0 then
        verdicts.Add(
            Violated(
                sprintf
                    "%d mappings are still live after every element was released: %s"
                    run.Memory.LiveMappings.Count
                    (String.Join(", ", run.Memory.LiveMappings |> Seq.map string))
            )
        )

    for KeyValue(space, used) in final.BounceBytesInUse do
        if used <> 0UL then
            verdicts.Add(Violated(sprintf "%s still holds %d bounce bytes" space used))

    for KeyValue(owner, count) in final.RefCounts do
        let before = afterSetup.[owner]

        if count <> before then
            verdicts.Add(Violated(sprintf "owner %s has %d references; it had %d after setup" owner count before))

    // a reset drops the ring caches: with nothing outstanding, every owner is back to its baseline
    let held = Dictionary<string, int>()

    for s in run.Steps do
        match s.Op, Option.ofObj s.Virtio with
        | (:? PopOp as p), Some v when not (isNull v.Element) -> held.[p.Element] <- 1
        | (:? ReleaseOp as r), _ when isNull s.Skipped -> held.Remove r.Element |> ignore
        | :? VirtioResetOp, _ when isNull s.Skipped ->
            if held.Count = 0 then
                for KeyValue(owner, count) in s.RefCounts do
                    if count <> Owner.Baseline then
                        verdicts.Add(
                            Violated(
                                sprintf
                                    "%s: owner %s has %d references after a reset with nothing outstanding (baseline %d)"
                                    (describe s)
                                    owner
                                    count
                                    Owner.Baseline
                            )
                        )

            held.Clear()
        | _ -> ()

    if
        run.Steps
        |> Seq.exists (fun s -> not (isNull s.Virtio) && s.Virtio.Error <> null)
    then
        labels.Add "an error path ran"

    if run.Steps |> Seq.exists (fun s -> s.LiveBounceMappings > 0) then
        labels.Add "bounce buffers involved"

    labels.Add(
        if
            run.Steps
            |> Seq.exists (fun s ->
                s.Op :? ReleaseOp
                && (s.Op :?> ReleaseOp).How = "detach"
                && s.Index >= scenario.Ops.Count)
        then
            "elements were still outstanding"
        else
            "everything released by the case itself"
    )

    conclude labels verdicts

// ---------------------------------------------------------------- VQ3 written length

let private usedRingPages (num: int) =
    set [ for p in UsedRing / 4096UL .. (UsedRing + VirtioConstants.UsedSize(num, true)) / 4096UL -> p ]

/// After a push with length L exactly the first L bytes of the in-buffers reach guest memory (dirty
/// pages for RAM, write-back for bounce buffers) and nothing of the out-buffers is written.
/// (VIRTIO 1.2 §2.7.8.2; hw/virtio/virtio.c:virtqueue_unmap_sg)
let writtenLength (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let popped = releasedAt run
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()
    let dirtySoFar = HashSet<struct (string * uint64)>()

    let num =
        match scenario.Ops.[0] with
        | :? VirtioSetupOp as v -> v.QueueSize
        | _ -> 256

    for s in run.Steps do
        for d in s.NewlyDirty do
            dirtySoFar.Add(struct (d.Block, d.Page)) |> ignore

        match s.Op, Option.ofObj run.Virtio with
        | (:? ReleaseOp as r), Some _ when isNull s.Skipped && r.How = "push" ->
            let e = popped.[s.Index]
            let len = uint64 r.Len
            // the first L bytes of the in-buffers, as (guest address, count)
            let mutable left = len
            let written = ResizeArray<uint64 * uint64>()

            for sg in e.In do
                let n = min left sg.Length

                if n > 0UL then
                    written.Add(sg.Addr, n)

                left <- left - n

            let expectedPages =
                set
                    [ for (a, n) in written do
                          for (k0, k1, hit) in segments scenario.Layout "memory" a n do
                              if writesRam hit then
                                  for p in hit.Value.Offset / 4096UL .. (hit.Value.Offset + (k1 - k0) - 1UL) / 4096UL -> struct (hit.Value.Region.Name, p) ]

            let allowed =
                Set.union expectedPages (set [ for p in usedRingPages num -> struct ("ram", p) ])
            // F-DMA-1: an in-buffer unmapped with access_len 0 still dirties its first page when it starts mid-page
            let zeroLengthPages =
                let mutable offset = 0UL

                set
                    [ for sg in e.In do
                          let access = min (len - min len offset) sg.Length
                          offset <- offset + access

                          if
                              access = 0UL
                              && sg.Mapping.Kind = MappingKind.Direct
                              && sg.Mapping.Xlat % 4096UL <> 0UL
                          then
                              yield struct (sg.Mapping.Region, sg.Mapping.Xlat / 4096UL) ]

            for d in s.NewlyDirty do
                if
                    zeroLengthPages.Contains(struct (d.Block, d.Page))
                    && not (allowed.Contains(struct (d.Block, d.Page)))
                then
                    verdicts.Add(KnownFinding(Findings.zeroLengthDirty.Id, describe s))
                elif not (allowed.Contains(struct (d.Block, d.Page))) then
                    verdicts.Add(Violated(sprintf "%s dirtied %s page %d, outside the first %d bytes of the in-buffers" (describe s) d.Block d.Page len))

            for p in expectedPages do
                if not (dirtySoFar.Contains p) then
                    let struct (b, pg) = p
                    verdicts.Add(Violated(sprintf "%s: %s page %d holds in-buffer bytes below len %d but is not dirty" (describe s) b pg len))
            // device writes only at in-buffer bytes below L
            let deviceTargets =
                HashSet<struct (string * uint64)>(
                    seq {
                        for (a, n) in written do
                            for (k0, k1, hit) in segments scenario.Layout "memory" a n do
                                if reachesDevice hit true then
                                    for k in 0UL .. (k1 - k0) - 1UL -> struct (hit.Value.Region.Name, hit.Value.Offset + k)
                    }
                )

            for a in s.DeviceAccesses do
                if
                    a.Access.IsWrite
                    && not (deviceTargets.Contains(struct (a.Region, a.Access.Offset)))
                then
                    verdicts.Add(
                        Violated(sprintf "%s wrote %s +0x%x, which is not among the first %d in-buffer bytes" (describe s) a.Region a.Access.Offset len)
                    )

            labels.Add(
                if len = 0UL then "push len 0"
                elif len >= e.InBytes then "push len covers all in-buffers"
                else "push len partial"
            )

            if e.In |> Seq.exists (fun sg -> sg.Mapping.Kind = MappingKind.Bounce) then
                labels.Add "bounce in-buffer"
        | _ -> ()

    if labels.Count = 0 then
        labels.Add "no push"

    conclude labels verdicts

// ---------------------------------------------------------------- VQ4 used ring contents

/// Each used element carries the head of its chain and the length the device reported, in push order,
/// and is written before the index that publishes it. (VIRTIO 1.2 §2.7.8, §2.7.13.3.1 memory ordering;
/// hw/virtio/virtio.c:virtqueue_split_fill, virtqueue_split_flush)
let usedRing (target: ITarget) (scenario: Scenario) =
    let run = target.Run scenario
    let popped = releasedAt run
    let num = queueSize scenario
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()

    match Option.ofObj run.Virtio with
    | None -> ()
    | Some v ->
        let mutable broken = false

        for s in run.Steps do
            match s.Op, Option.ofObj s.Virtio with
            | (:? ReleaseOp as r), Some vs when isNull s.Skipped ->
                let e = popped.[s.Index]

                let expected =
                    if r.How = "push" && not broken then
                        [ struct (e.Head, r.Len) ]
                    else
                        []

                let seen =
                    vs.NewUsed |> Seq.map (fun struct (id, len) -> struct (id, len)) |> List.ofSeq

                if seen <> expected then
                    verdicts.Add(Violated(sprintf "%s: the driver saw %A in the used ring, expected %A" (describe s) (List.ofSeq vs.NewUsed) expected))

                if not expected.IsEmpty then
                    labels.Add "push published"
            | _ -> ()

            if not (isNull s.Virtio) && s.Virtio.Broken then
                broken <- true

            if s.Op :? VirtioResetOp && isNull s.Skipped then
                broken <- false
        // every push on a working device interrupts the driver exactly when it asked to be (VIRTIO 1.2
        // §2.7.7.2, §2.7.10): without EVENT_IDX unless VRING_AVAIL_F_NO_INTERRUPT (these cases leave the flags
        // clear), with it when used.idx passes used_event (0 here: the rings start zeroed) since the last
        // interrupt, and always for the first; a broken device interrupts nothing
        let eventIdx =
            scenario.Ops
            |> Seq.exists (function
                | :? VirtioSetupOp as v -> v.EventIdx
                | _ -> false)

        if not (scenario.Ops |> Seq.exists (fun o -> o :? InterruptSuppressionOp)) then
            let mutable interrupts = 0
            let mutable signalledValid = false
            let mutable signalled = 0us

            for s in run.Steps do
                match s.Op, Option.ofObj s.Virtio with
                | (:? VirtioResetOp), Some vs when isNull s.Skipped ->
                    signalledValid <- false
                    signalled <- 0us
                    interrupts <- vs.Interrupts
                | (:? ReleaseOp as r), Some vs when isNull s.Skipped && r.How = "push" ->
                    let expected =
                        if vs.Broken then
                            0
                        elif not eventIdx then
                            1
                        else
                            let wasValid = signalledValid
                            let old = signalled
                            signalledValid <- true
                            signalled <- vs.UsedIdx

                            if not wasValid || uint16 (vs.UsedIdx - 0us - 1us) < uint16 (vs.UsedIdx - old) then
                                1
                            else
                                0

                    if vs.Interrupts - interrupts <> expected then
                        verdicts.Add(Violated(sprintf "%s: %d interrupts raised, the driver asked for %d" (describe s) (vs.Interrupts - interrupts) expected))

                    if expected = 1 then
                        labels.Add "push interrupted the driver"
                    elif not vs.Broken then
                        labels.Add "push without an interrupt (used_event not passed)"

                    interrupts <- vs.Interrupts
                | _, Some vs -> interrupts <- vs.Interrupts
                | _ -> ()

        // every idx write publishes only elements already written (the ring starts over at a reset)
        let written = HashSet<int>()
        let mutable published = 0

        for w in v.RingWrites do
            match w.What with
            | "elem" -> written.Add w.Slot |> ignore
            | "reset" ->
                written.Clear()
                published <- 0
            | "idx" ->
                let target = int w.Value

                for i in published .. target - 1 do
                    if not (written.Contains(i % num)) then
                        verdicts.Add(Violated(sprintf "used.idx was set to %d before used.ring[%d] was written" target (i % num)))

                published <- target
            | _ -> ()

    if labels.Count = 0 then
        labels.Add "nothing published"

    conclude labels verdicts

// ---------------------------------------------------------------- VQ5 malformed rings

/// Random bytes as descriptor table, available ring and index end in an element, an empty queue or a
/// broken device — never an exception — and a chain walk reads at most queue-size + 1 descriptors
/// (QEMU maps the (num+1)-th before "Looped descriptor": registered finding F-VQ-1).
/// (VIRTIO 1.2 §2.7.5.3.1, §2.7.6; hw/virtio/virtio.c:virtqueue_split_pop; CVE-2016-6490, CVE-2016-7422)
let malformedRings (target: ITarget) (scenario: Scenario) =
    let verdicts = ResizeArray<Verdict>()
    let labels = ResizeArray<string>()

    try
        let run = runAndDetachAll target scenario

        let num =
            match scenario.Ops.[0] with
            | :? VirtioSetupOp as v -> v.QueueSize
            | _ -> 256

        let mutable readsBefore = 0
        let mutable wasBroken = false

        for s in run.Steps do
            match s.Op, Option.ofObj s.Virtio with
            | (:? PopOp), Some v ->
                let reads = v.DescriptorReads - readsBefore

                if reads > num + 1 then
                    verdicts.Add(Violated(sprintf "%s read %d descriptors from a queue of %d" (describe s) reads num))
                elif reads > num then
                    verdicts.Add(KnownFinding(Findings.loopReadsOneMore.Id, describe s))

                let outcome =
                    if v.Popped <> null then
                        "element"
                    elif v.Error <> null then
                        (if v.Broken then
                             "rejected, device broken"
                         else
                             "error without breaking")
                    else
                        "empty"

                if outcome = "error without breaking" then
                    verdicts.Add(Violated(sprintf "%s reported %s without breaking the device" (describe s) v.Error))

                if v.Error <> null then
                    labels.Add("rejected: " + Text.RegularExpressions.Regex.Replace(v.Error, @"\d+", "N"))

                if wasBroken && v.Popped <> null then
                    verdicts.Add(Violated(sprintf "%s popped from a broken device" (describe s)))

                labels.Add outcome
                readsBefore <- v.DescriptorReads
                wasBroken <- v.Broken
            | _, Some v ->
                readsBefore <- v.DescriptorReads
                wasBroken <- v.Broken
            | _ -> ()

        if run.Memory.LiveMappings.Count > 0 then
            verdicts.Add(Violated(sprintf "%d mappings leaked" run.Memory.LiveMappings.Count))
    with e ->
        verdicts.Add(Violated(sprintf "the target threw %s: %s" (e.GetType().Name) e.Message))

    conclude labels verdicts

let genRandomRing (profile: Profile) =
    gen {
        let! num = Gen.elements [ 1; 2; 4; 8; 16 ]
        let! descBytes = Gen.arrayOfLength (16 * num) (Gen.choose (0, 255) |> Gen.map byte)
        // bias fields toward small, meaningful values: addresses in RAM, lengths small, flags 0-7, next < 2num
        let! tweak = Gen.elements [ true; false ]

        let descs =
            if not tweak then
                descBytes
            else
                let b = Array.copy descBytes

                for i in 0 .. num - 1 do
                    b.[16 * i + 2] <- 0uy
                    b.[16 * i + 3] <- 0uy
                    b.[16 * i + 4] <- 0uy
                    b.[16 * i + 5] <- 0uy
                    b.[16 * i + 6] <- 0uy
                    b.[16 * i + 7] <- 0uy
                    b.[16 * i + 10] <- 0uy
                    b.[16 * i + 11] <- 0uy
                    b.[16 * i + 12] <- b.[16 * i + 12] &&& 7uy
                    b.[16 * i + 13] <- 0uy
                    b.[16 * i + 14] <- b.[16 * i + 14] % byte (2 * num)
                    b.[16 * i + 15] <- 0uy

                b

        let! ring =
            Gen.arrayOfLength
                num
                (Gen.frequency [ 3, Gen.choose (0, num - 1); 1, Gen.choose (0, 65535) ]
                 |> Gen.map uint16)

        let! idx =
            Gen.frequency [ 3, Gen.choose (0, num + 1); 1, Gen.choose (0, 65535) ]
            |> Gen.map uint16

        let! pops = Gen.choose (1, num + 2)
        let availBytes = Array.zeroCreate<byte> (4 + 2 * num)
        BitConverter.TryWriteBytes(Span(availBytes, 2, 2), idx) |> ignore

        ring
        |> Array.iteri (fun i h -> BitConverter.TryWriteBytes(Span(availBytes, 4 + 2 * i, 2), h) |> ignore)

        let ops =
            [ yield setup num false true
              yield WriteOp("memory", DescRing, descs) :> ScenarioOp
              yield WriteOp("memory", AvailRing, availBytes) :> ScenarioOp
              for i in 1..pops -> PopOp(sprintf "e%d" i) :> ScenarioOp ]

        return Scenario(profile, layout, Array.ofList ops)
    }

// ---------------------------------------------------------------- VQ6 malformed chains, oracle by construction

/// A chain built to be malformed ends exactly as QEMU ends it: the expected virtio_error, the device
/// broken (NEEDS_RESET for VERSION_1 drivers), everything mapped for it unmapped, nothing published.
/// (hw/virtio/virtio.c:virtqueue_split_pop error paths; VIRTIO 1.2 §2.7.5.3, §2.1.2 NEEDS_RESET)
let malformedVerdicts (target: ITarget) (scenario: Scenario) =
    let expected =
        if isNull scenario.Description then
            ""
        else
            scenario.Description.Replace("expect: ", "")

    let run = target.Run scenario
    let verdicts = ResizeArray<Verdict>()

    match Option.ofObj run.Virtio with
    | None -> verdicts.Add(Violated "no virtio device")
    | Some v ->
        let errors = List.ofSeq v.Errors

        match errors with
        | first :: _ when first = expected -> ()
        | first :: _ -> verdicts.Add(Violated(sprintf "the device reported \"%s\"; QEMU reports \"%s\"" first expected))
        | [] -> verdicts.Add(Violated(sprintf "the device accepted the chain; QEMU reports \"%s\"" expected))

        if not v.Broken then
            verdicts.Add(Violated "the device is not broken")

        if v.Status &&& VirtioConstants.StatusNeedsReset = 0uy then
            verdicts.Add(Violated "a VERSION_1 device must set NEEDS_RESET")

        let outstanding =
            outstanding run |> List.sumBy (fun (_, e) -> e.Out.Count + e.In.Count)

        if run.Memory.LiveMappings.Count <> outstanding then
            verdicts.Add(Violated(sprintf "%d mappings are live; the popped elements hold %d" run.Memory.LiveMappings.Count outstanding))

        if v.UsedIdx <> 0us then
            verdicts.Add(Violated "something was published")

    judged [ Text.RegularExpressions.Regex.Replace(expected, @"\d+", "N") ] (List.ofSeq verdicts |> List.truncate 3)

// ---------------------------------------------------------------- VQ7 notifications

type NotifyCase =
    { EventIdx: bool
      UsedEvent: uint16
      New: uint16
      Old: uint16
      NoInterrupt: bool }

let genNotifyCase =
    let edge =
        Gen.frequency
            [ 3, Gen.choose (0, 65535) |> Gen.map uint16
              1, Gen.elements [ 0us; 1us; 65534us; 65535us; 32767us; 32768us ] ]

    gen {
        let! e = Gen.elements [ true; false ]
        let! ue = edge
        let! n = edge
        let! delta = Gen.frequency [ 3, Gen.choose (0, 8); 1, Gen.choose (0, 65535) ]
        let! noInt = Gen.elements [ true; false ]

        return
            { EventIdx = e
              UsedEvent = ue
              New = n
              Old = n - uint16 delta
              NoInterrupt = noInt }
    }

/// The device notifies exactly when the driver asked to be: with EVENT_IDX iff vring_need_event(used_event,
/// new, old) — (u16)(new − event − 1) < (u16)(new − old) — otherwise iff VRING_AVAIL_F_NO_INTERRUPT is clear.
/// (VIRTIO 1.2 §2.7.7.2, §2.7.10; hw/virtio/virtio.c:virtio_split_should_notify)
/// NotifyCase travels as a scenario (so it can be saved and replayed): its description carries the numbers.
let encodeNotify (c: NotifyCase) =
    Scenario(
        Profile.Qemu72,
        layout,
        [||],
        Description = sprintf "notify: eventIdx=%b usedEvent=%d new=%d old=%d noInterrupt=%b" c.EventIdx c.UsedEvent c.New c.Old c.NoInterrupt
    )

let decodeNotify (s: Scenario) =
    let f (name: string) =
        Text.RegularExpressions.Regex.Match(s.Description, name + "=(\\w+)").Groups.[1].Value

    { EventIdx = Boolean.Parse(f "eventIdx")
      UsedEvent = UInt16.Parse(f "usedEvent")
      New = UInt16.Parse(f "new")
      Old = UInt16.Parse(f "old")
      NoInterrupt = Boolean.Parse(f "noInterrupt") }

let arbNotify (_: Profile) =
    let shrink (s: Scenario) =
        let c = decodeNotify s

        seq {
            if c.New <> c.Old then
                yield { c with Old = c.New }

            if c.UsedEvent <> 0us then
                yield { c with UsedEvent = 0us }

            if c.New > 0us then
                yield
                    { c with
                        New = c.New / 2us
                        Old = c.Old / 2us }
        }
        |> Seq.map encodeNotify

    Arb.fromGenShrink (genNotifyCase |> Gen.map encodeNotify, shrink)

/// Sets the queue's counters directly, so it needs an in-process instance (Capabilities.InProcessInstances).
let notificationCase (target: ITarget) (c: NotifyCase) =
    let target = target :?> IInProcessTarget
    let sys = target.NewSystem(layout, Profile.Qemu72)
    let space = sys.Space "memory"

    let features =
        if c.EventIdx then
            1UL <<< VirtioConstants.FeatureEventIdx
        else
            0UL

    let dev = target.NewVirtioDevice(sys, space, 1, features)
    let driver = SplitRingDriver(sys, space, 16, DescRing, AvailRing, UsedRing)
    driver.ClearRings c.EventIdx
    dev.SetupQueue(0, 16, DescRing, AvailRing, UsedRing)
    let vq = dev.Queues.[0]

    driver.SetAvailFlags(
        if c.NoInterrupt then
            VirtioConstants.AvailFlagNoInterrupt
        else
            0us
    )

    driver.SetUsedEvent c.UsedEvent
    vq.UsedIdx <- c.New
    vq.SignalledUsed <- c.Old
    vq.SignalledUsedValid <- true
    let got = dev.ShouldNotify vq

    let expected =
        if c.EventIdx then
            uint16 (c.New - c.UsedEvent - 1us) < uint16 (c.New - c.Old)
        else
            not c.NoInterrupt

    let wraps = c.Old > c.New

    let labels =
        [ (if c.EventIdx then "event_idx" else "no event_idx")
          (if wraps then "indices wrap" else "no wrap")
          (if expected then "notify" else "suppress") ]

    judged
        labels
        (if got = expected then
             []
         else
             [ Violated(sprintf "%A: the device decided %b, the driver asked for %b" c got expected) ])

let notification (target: ITarget) (s: Scenario) =
    notificationCase target (decodeNotify s)
