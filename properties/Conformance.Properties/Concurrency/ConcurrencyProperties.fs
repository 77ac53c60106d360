/// The concurrency properties (P20-P23). Each case runs `runs` times free on real threads and `runs`
/// times under seeded controlled schedules derived from the case itself, so a failure found by the
/// controlled scheduler replays from the FsCheck replay token alone.
module Conformance.Properties.ConcurrencyProperties

open System
open Conformance.Model
open Conformance.Properties.Verdict
open Conformance.Properties.ParallelCommands
open Conformance.Properties.ParallelExecution
open Conformance.Properties.Linearizability

/// Free runs and controlled schedules per case (CONFORMANCE_PARALLEL_RUNS, default 20 each).
let runsPerCase () = Settings.parallelRuns ()

/// A stable hash of a case's text (string.GetHashCode is randomised per process).
let stableSeed (lines: string list) =
    let mutable h = 2166136261u

    for l in lines do
        for ch in l do
            h <- (h ^^^ uint32 ch) * 16777619u

        h <- (h ^^^ 10u) * 16777619u

    int (h &&& 0x7fffffffu)

let private switchPercents = [| 5; 20; 50 |]

/// The controlled schedules of a case: (seed, switch percent) for k = 0 .. runs-1.
let schedulesOf (lines: string list) (runs: int) =
    let baseSeed = stableSeed lines
    [ for k in 0 .. runs - 1 -> (baseSeed + 7919 * k) &&& 0x7fffffff, switchPercents.[k % switchPercents.Length] ]

/// The runs of a case, in order: controlled schedule k, then free run k, for k = 0 .. runs-1 — each
/// named as a report names it, with its (seed, switch percent) when controlled. Consumers evaluate them
/// lazily, so a failing case stops at its first failure.
let attemptsOf (lines: string list) : (string * (int * int) option) seq =
    let runs = runsPerCase ()

    seq {
        for k, (seed, pct) in List.indexed (schedulesOf lines runs) do
            yield sprintf "controlled schedule seed %d (switch %d%%)" seed pct, Some(seed, pct)
            yield sprintf "free run %d on real threads" k, None
    }

let observations (target: Conformance.Model.Targets.IInProcessTarget) (c: ParallelCase) : Observation seq =
    attemptsOf (render c)
    |> Seq.mapi (fun i (_, controlled) ->
        match controlled with
        | Some(seed, pct) -> runControlled target c seed pct
        | None -> runFree target c (i / 2))

let private endingProblem (o: Observation) =
    match o.Ending with
    | ControlledScheduler.Completed -> None
    | ControlledScheduler.Deadlock waiting -> Some(sprintf "the threads deadlocked: %s" (String.Join("; ", waiting)))
    | ControlledScheduler.StepBound k -> Some(sprintf "the run did not finish (%d steps)" k)
    | ControlledScheduler.Threw(t, e) -> Some(sprintf "thread %d threw %s: %s" t (e.GetType().Name) e.Message)

let private report (o: Observation) (headline: string) (details: string list) =
    String.Join(
        "\n",
        [ yield sprintf "%s (%O)" headline o.Schedule
          yield! details
          yield "history (thread [invoked..returned] command -> result):"
          for l in renderHistory o.History do
              yield "  " + l
          if not o.Trace.IsEmpty then
              yield "last scheduling steps:"

              for l in ControlledScheduler.renderTrace (fun i -> sprintf "thread %d" (i + 1)) 25 o.Trace do
                  yield "  " + l ]
    )

/// Labels of one observation: which contended edges the run reached.
let private edgeLabels (c: ParallelCase) (o: Observation) =
    let results = o.History |> Array.map (fun op -> op.Command, op.Half, op.Result)

    [ if results |> Array.exists (fun (_, _, r) -> r.StartsWith "failed: NoBounceSpace") then
          yield "a map failed for lack of bounce space"
      if
          results
          |> Array.exists (fun (cmd, h, r) ->
              (match cmd with
               | Unmap _ -> h = 1
               | _ -> false)
              && r.StartsWith "woke ["
              && r <> "woke []")
      then
          yield "an unmap woke a waiting client"
      if
          results
          |> Array.exists (fun (cmd, _, r) ->
              (match cmd with
               | Register _ -> true
               | _ -> false)
              && r <> "woke []")
      then
          yield "a registration found space at once"
      if
          results
          |> Array.exists (fun (cmd, _, r) ->
              match cmd with
              | Map(_, Mmio, _, l, _) -> r.StartsWith "Bounce " && Int32.Parse(r.Substring 7) < l
              | _ -> false)
      then
          yield "a bounce map was granted less than asked" ]

/// Whether two operations of different threads overlapped in time (true concurrency, not just threads).
let private overlapped (o: Observation) =
    o.History
    |> Array.exists (fun a ->
        o.History
        |> Array.exists (fun b -> a.Actor <> b.Actor && a.Invoked < b.Returned && b.Invoked < a.Returned))

let private judgeRuns
    (target: Conformance.Model.Targets.IInProcessTarget)
    (c: ParallelCase)
    (judgeOne: Observation -> string option)
    (extraLabels: Observation -> string list)
    =
    let labels = Collections.Generic.HashSet<string>()
    labels.Add(sprintf "%d threads" c.Threads.Length) |> ignore
    let mutable violation = None
    use e = (observations target c).GetEnumerator()

    while violation.IsNone && e.MoveNext() do
        let o = e.Current

        for l in edgeLabels c o @ extraLabels o do
            labels.Add l |> ignore

        match o.Schedule with
        | Free _ when overlapped o -> labels.Add "free run: operations of different threads overlapped" |> ignore
        | _ -> ()

        violation <- judgeOne o

    judged (List.ofSeq labels) (violation |> Option.map Violated |> Option.toList)

/// P20: every run's results are explained by one sequential order of the reference model.
let linearizability (target: Conformance.Model.Targets.IInProcessTarget) (c: ParallelCase) : CaseResult =
    let expectedPrefix = specPrefix c
    let spec, _ = specification c

    let reordered (order: Op<Command> list) =
        let byInvocation = order |> List.sortBy (fun op -> op.Invoked, op.Actor, op.Seq)

        if order <> byInvocation then
            [ "linearization differs from invocation order" ]
        else
            []

    let mutable extra = []

    let judgeOne (o: Observation) =
        if o.PrefixResults <> expectedPrefix then
            Some(
                report
                    o
                    "the sequential prefix already disagrees with the reference model"
                    [ sprintf "expected %A" expectedPrefix; sprintf "observed %A" o.PrefixResults ]
            )
        else
            match endingProblem o with
            | Some p -> Some(report o p [])
            | None ->
                match check spec 200_000 o.History with
                | Linearizable order ->
                    extra <- reordered order
                    None
                | Undecided steps -> Some(report o (sprintf "the linearizability search gave up after %d steps" steps) [])
                | NotLinearizable(longest, blocked) ->
                    Some(
                        report
                            o
                            "no sequential order of the reference model explains these results"
                            [ sprintf "longest explained order (%d of %d operations):" longest.Length o.History.Length
                              yield!
                                  longest
                                  |> List.map (fun op -> sprintf "  thread %d: %s -> %s" op.Actor (describe op.Command) op.Result)
                              "after it, every operation that could come next returns something else in the model:"
                              yield!
                                  blocked
                                  |> List.map (fun (op, got) ->
                                      sprintf "  thread %d: %s observed %s, model says %s" op.Actor (describe op.Command) op.Result got) ]
                    )

    judgeRuns target c judgeOne (fun _ -> extra)

/// P21: bounce bytes in use never exceed the limit, at any instant the observer saw or the scheduler
/// stopped at, and at the end the accounting matches the buffers that exist.
let bounceBudget (target: Conformance.Model.Targets.IInProcessTarget) (c: ParallelCase) : CaseResult =
    let judgeOne (o: Observation) =
        match o.BudgetBreaches with
        | b :: _ -> Some(report o ("bounce budget exceeded: " + b) [])
        | [] ->
            let bad =
                o.Final
                |> List.tryFind (fun l ->
                    if l.StartsWith "bounce " && l.Contains " reserved " then
                        let parts = l.Split(' ')
                        parts.[3] <> parts.[5]
                    elif l.StartsWith "bounce in use " then
                        (l.Contains "in use true") <> not (l.EndsWith "buffers 0")
                    else
                        false)

            bad
            |> Option.map (fun l -> report o ("at the end the bounce accounting does not match the buffers that exist: " + l) [])

    judgeRuns target c judgeOne (fun o ->
        [ if
              o.History
              |> Array.exists (fun op -> op.Result.StartsWith "failed: NoBounceSpace")
          then
              "budget reached while others held space"
          if o.OverByReturnedBudget then
              "registered finding F-DMA-6: over the budget by buffers whose budget unmap had already returned" ])

/// P23: refcounts, dirty bits, memory and device contents after the threads finish are those of the
/// linearization found.
let balanceUnderContention (target: Conformance.Model.Targets.IInProcessTarget) (c: ParallelCase) : CaseResult =
    let spec, system = specification c

    let judgeOne (o: Observation) =
        match endingProblem o with
        | Some p -> Some(report o p [])
        | None ->
            match checkWith spec 200_000 (fun () -> finalState (system ()) = o.Final) o.History with
            | Linearizable _ -> None
            | Undecided steps -> Some(report o (sprintf "the search gave up after %d steps" steps) [])
            | NotLinearizable _ ->
                match check spec 200_000 o.History with
                | Linearizable order ->
                    spec.Reset()

                    for op in order do
                        spec.Apply op |> ignore

                    let expected = finalState (system ())
                    let missing = expected |> List.filter (fun l -> not (List.contains l o.Final))
                    let unexpected = o.Final |> List.filter (fun l -> not (List.contains l expected))

                    Some(
                        report
                            o
                            "no order that explains the results leaves the state the run left"
                            [ yield "one order that explains the results:"
                              yield!
                                  order
                                  |> List.map (fun op -> sprintf "  thread %d: %s -> %s" op.Actor (describe op.Command) op.Result)
                              yield "the sequential model after it has, and the run has not:"
                              yield! missing |> List.map ((+) "  ")
                              yield "the run has instead:"
                              yield! unexpected |> List.map ((+) "  ") ]
                    )
                | _ -> Some(report o "no linearization to compare the final state with (see P20)" [])

    judgeRuns target c judgeOne (fun o ->
        [ if
              o.History
              |> Array.exists (fun op ->
                  match op.Command with
                  | Map(_, Ram, _, _, true) -> op.Result.StartsWith "Direct"
                  | _ -> false)
          then
              yield "a thread dirtied RAM"
          if o.Final |> List.exists (fun l -> l.StartsWith "device ") then
              yield "device memory written back" ])

/// P22: with devices retrying through map clients, every request completes.
let noLostWakeup (target: Conformance.Model.Targets.IInProcessTarget) (c: WakeupWorkload.WakeupCase) : CaseResult =
    let labels = Collections.Generic.HashSet<string>()
    labels.Add(sprintf "%d devices" c.Devices.Length) |> ignore
    let mutable violation = None

    let attempts =
        attemptsOf (WakeupWorkload.render c)
        |> Seq.map (fun (name, controlled) -> name, WakeupWorkload.run target c controlled)

    use e = attempts.GetEnumerator()

    while violation.IsNone && e.MoveNext() do
        let schedule, r = e.Current

        if r.Waits > 0 then
            labels.Add "a device had to wait for bounce space" |> ignore

        if r.Waits >= 3 then
            labels.Add "devices waited 3+ times in one run" |> ignore

        if r.Wakeups > 0 then
            labels.Add "a bottom half woke a device" |> ignore

        let tail =
            [ if not r.Trace.IsEmpty then
                  yield "last scheduling steps:"
              for l in ControlledScheduler.renderTrace (fun i -> if i = 0 then "main loop" else sprintf "device %d" i) 30 r.Trace do
                  yield "  " + l ]

        match r.Outcome with
        | WakeupWorkload.AllDone -> ()
        | WakeupWorkload.LostWakeup(waiting, state) ->
            violation <-
                Some(
                    String.Join(
                        "\n",
                        [ yield sprintf "lost wake-up (%s): device(s) %A wait for a map-client bottom half nobody will schedule" schedule waiting
                          yield! state |> List.map ((+) "  ")
                          yield! tail ]
                    )
                )
        | WakeupWorkload.Failed why -> violation <- Some(String.Join("\n", sprintf "%s: %s" schedule why :: tail))

    judged (List.ofSeq labels) (violation |> Option.map Violated |> Option.toList)
