/// The concurrency properties as catalogue entries: each with its rules, its generator, the broken
/// variants it must reject, and a checker that reports like the sequential ones (verdict, case
/// distribution, shrunk case, replay token and the one command that reproduces it).
module Conformance.Properties.ParallelCatalogue

open System
open FsCheck
open Conformance.Model
open Conformance.Properties.Runner

/// Generated cases per concurrency property (CONFORMANCE_PARALLEL_CASES, default 200).
let defaultCases () = Settings.parallelCases ()

type Outcome =
    {
        Passed: bool
        Tests: int
        Shrinks: int
        Distribution: (string * float) list
        Message: string
        /// The shrunk case, rendered.
        Counterexample: string list option
        /// The shrunk case itself, for a case file (ConcurrentCaseFile).
        Case: ConcurrentCaseFile.ConcurrentCase option
        Replay: ReplayToken option
    }

/// A deliberately broken variant: of the memory system, or of the virtio layer.
type Variant =
    | ModelFault of Fault
    | VirtioFault of Conformance.Model.Virtio.VirtioFault

    override v.ToString() =
        match v with
        | ModelFault f when f = Fault.None -> "reference model"
        | ModelFault f -> sprintf "broken variant %A" f
        | VirtioFault f -> sprintf "broken variant %A" f

let Reference = ModelFault Fault.None

type Entry =
    {
        Number: int
        Name: string
        Title: string
        Rules: string list
        /// The broken variants this property must reject under a profile (and its name for reports).
        Broken: Profile -> Variant list
        Check: Variant -> Profile -> int -> ReplayToken option -> Outcome
        /// Judges one case read from a file (None: the case is of another workload than this property's).
        JudgeCase: Variant -> ConcurrentCaseFile.ConcurrentCase -> Verdict.CaseResult option
    }

let private checkWith
    (wrap: 'c -> ConcurrentCaseFile.ConcurrentCase)
    (arb: Profile -> Arbitrary<'c>)
    (render: 'c -> string list)
    (judge: Variant -> 'c -> Verdict.CaseResult)
    (variant: Variant)
    (profile: Profile)
    (maxTest: int)
    (replay: ReplayToken option)
    : Outcome =
    let capture = runProperty (arb profile) (judge variant) maxTest replay

    let blank =
        { Passed = false
          Tests = 0
          Shrinks = 0
          Distribution = []
          Message = ""
          Counterexample = None
          Case = None
          Replay = None }

    match capture.Result with
    | Some(TestResult.Passed(data, _)) ->
        { blank with
            Passed = true
            Tests = data.NumberOfTests
            Distribution = distribution capture }
    | Some(TestResult.Exhausted data) ->
        { blank with
            Tests = data.NumberOfTests
            Message = "gave up: too many discarded cases" }
    | Some(TestResult.Failed(data, _, shrunk, outcome, _, failingRnd, size)) ->
        let case =
            shrunk
            |> List.tryPick (function
                | :? 'c as c -> Some c
                | _ -> None)

        { blank with
            Tests = data.NumberOfTests
            Shrinks = data.NumberOfShrinks
            Message = failureMessage data outcome
            Counterexample = case |> Option.map render
            Case = case |> Option.map wrap
            Replay =
                Some
                    { Seed = failingRnd.Seed
                      Gamma = failingRnd.Gamma
                      Size = size } }
    | None ->
        { blank with
            Message = "FsCheck reported no result" }

let private modelFault =
    function
    | ModelFault f -> f
    | v -> invalidArg "variant" (sprintf "%O is not a memory-system variant" v)

let private virtioFault =
    function
    | VirtioFault f -> f
    | ModelFault f when f = Fault.None -> Conformance.Model.Virtio.VirtioFault.None
    | v -> invalidArg "variant" (sprintf "%O is not a virtio variant" v)

let private parallelCheck judge =
    checkWith ConcurrentCaseFile.Commands ParallelCases.arbCase ParallelCommands.render (modelFault >> judge)

let private wakeupCheck judge =
    checkWith ConcurrentCaseFile.Wakeup WakeupWorkload.arbCase WakeupWorkload.render (modelFault >> judge)

let private queuesCheck judge =
    checkWith ConcurrentCaseFile.Queues ParallelVirtqueues.arbCase ParallelVirtqueues.render (virtioFault >> judge)

let private commandsCase judge variant =
    function
    | ConcurrentCaseFile.Commands c -> Some(judge (modelFault variant) c)
    | _ -> None

let private wakeupCase judge variant =
    function
    | ConcurrentCaseFile.Wakeup c -> Some(judge (modelFault variant) c)
    | _ -> None

let private queuesCase judge variant =
    function
    | ConcurrentCaseFile.Queues c -> Some(judge (virtioFault variant) c)
    | _ -> None

/// Rule ids in parentheses (B72-1, BM-1, UM-2, C2, U72-3, UM-4) are headings in docs/qemu-rules.md.
let all: Entry list =
    [ { Number = 20
        Name = "linearizability"
        Title = "Concurrent map/unmap/map-client histories are explained by one sequential order of the model (Wing-Gong)"
        Rules =
          [ "softmmu/physmem.c:address_space_map (qatomic_xchg bounce.in_use)"
            "system/physmem.c:address_space_map (qatomic_cmpxchg bounce_buffer_size)"
            "softmmu/physmem.c:cpu_register_map_client (map_client_list_lock)" ]
        Broken = fun _ -> [ ModelFault Fault.NonAtomicBounceClaim ]
        Check = parallelCheck ConcurrencyProperties.linearizability
        JudgeCase = commandsCase ConcurrencyProperties.linearizability }
      { Number = 21
        Name = "bounce-budget"
        Title = "At every observed instant bounce bytes in use stay within the limit (Qemu72: one page, one buffer; Qemu92: the AS budget)"
        Rules =
          [ "softmmu/physmem.c:address_space_map (B72-1, B72-2)"
            "system/physmem.c:address_space_map (BM-1)"
            "system/physmem.c:address_space_unmap (UM-2)" ]
        Broken =
          fun p ->
              [ yield ModelFault Fault.NonAtomicBounceClaim
                if p = Profile.Qemu92 then
                    yield ModelFault Fault.DoubleBudgetRelease ]
        Check = parallelCheck ConcurrencyProperties.bounceBudget
        JudgeCase = commandsCase ConcurrencyProperties.bounceBudget }
      { Number = 22
        Name = "no-lost-wakeup"
        Title = "Devices that fail a map and register a client are always woken; retry loops always finish"
        Rules =
          [ "softmmu/physmem.c:cpu_register_map_client (C2)"
            "softmmu/physmem.c:address_space_unmap (U72-3: release, then notify)"
            "system/physmem.c:address_space_unmap (UM-4)"
            "softmmu/dma-helpers.c:dma_blk_cb" ]
        Broken = fun _ -> [ ModelFault Fault.NotifyBeforeRelease; ModelFault Fault.UnlockedClientList ]
        Check = wakeupCheck ConcurrencyProperties.noLostWakeup
        JudgeCase = wakeupCase ConcurrencyProperties.noLostWakeup }
      { Number = 23
        Name = "balance-under-contention"
        Title = "After the threads finish, refcounts, dirty bits and memory are those of the linearization"
        Rules =
          [ "softmmu/memory.c:memory_region_ref (object_ref: qatomic_inc)"
            "softmmu/physmem.c:invalidate_and_set_dirty"
            "softmmu/physmem.c:address_space_unmap" ]
        Broken = fun _ -> [ ModelFault Fault.NonAtomicRef ]
        Check = parallelCheck ConcurrencyProperties.balanceUnderContention
        JudgeCase = commandsCase ConcurrencyProperties.balanceUnderContention }
      { Number = 24
        Name = "parallel-virtqueues"
        Title = "Devices popping and pushing MMIO-backed chains in parallel conserve elements and leave no mapping behind"
        Rules =
          [ "hw/virtio/virtio.c:virtqueue_map_desc"
            "hw/virtio/virtio.c:virtqueue_undo_map_desc"
            "hw/virtio/virtio.c:virtqueue_push"
            "VIRTIO 1.2 §2.7.8" ]
        Broken = fun _ -> [ VirtioFault Conformance.Model.Virtio.VirtioFault.NoUndoOnError ]
        Check = queuesCheck ParallelVirtqueues.parallelQueues
        JudgeCase = queuesCase ParallelVirtqueues.parallelQueues } ]

let find (name: string) =
    all |> List.tryFind (fun e -> e.Name = name || string e.Number = name)

let testName (e: Entry) (profile: Profile) =
    sprintf "%s_%A" (e.Name.Replace('-', '_')) profile

let report (e: Entry) (profile: Profile) (variant: Variant) (o: Outcome) =
    let sb = Text.StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore

    line (
        sprintf
            "%s  P%d %s [%A] on the %s: %d cases x %d free runs + %d controlled schedules%s"
            (if o.Passed then "PASS" else "FAIL")
            e.Number
            e.Name
            profile
            (string variant)
            o.Tests
            (ConcurrencyProperties.runsPerCase ())
            (ConcurrencyProperties.runsPerCase ())
            (if o.Shrinks > 0 then
                 sprintf ", %d shrinks" o.Shrinks
             else
                 "")
    )

    line (sprintf "      %s" e.Title)

    for (label, pct) in o.Distribution |> List.truncate 12 do
        line (sprintf "      %5.1f%% %s" pct label)

    if not o.Passed then
        line "      why:"

        for l in o.Message.Split('\n') do
            line ("        " + l)

        match o.Counterexample with
        | Some lines ->
            line "      shrunk case:"

            for l in lines do
                line ("        " + l)
        | None -> ()

        match o.Case with
        | Some c ->
            line "      as a case file (conformance replay FILE replays it, conformance explain FILE explains it):"

            for l in (ConcurrentCaseFile.write e.Name None c).TrimEnd().Split('\n') do
                line ("        " + l)
        | None -> ()

        match o.Replay with
        | Some token ->
            line (sprintf "      replay token: %O (controlled schedules are derived from the case, so they replay exactly;" token)
            line "      a failure seen only in a free run may need several tries)"
            line "      reproduce with:"

            if variant = Reference then
                line (
                    sprintf
                        "        %s=%O dotnet test properties/Conformance.Properties.Tests --filter \"FullyQualifiedName~ConcurrencyPropertyTests.%s\""
                        ReplayVariable
                        token
                        (testName e profile)
                )

            let variantOption =
                match variant with
                | ModelFault f when f = Fault.None -> ""
                | ModelFault f -> sprintf " --variant %A" f
                | VirtioFault f -> sprintf " --variant %A" f

            line (
                sprintf "        dotnet run --project src/Conformance.Cli -- check --property %s --profile %A%s --replay %O" e.Name profile variantOption token
            )
        | None -> ()

    sb.ToString()
