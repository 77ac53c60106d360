/// Running a parallel case: free on real threads that a barrier releases together (with an observer
/// thread sampling the bounce budget), or under the seeded scheduler (the observer then checks after
/// every interleaving point). Both record the same history and final state.
module Conformance.Properties.ParallelExecution

open System
open System.Threading
open Conformance.Model
open Conformance.Properties.ParallelCommands
open Conformance.Properties.Linearizability

/// How a run was scheduled: free on real threads, or by the controlled scheduler with this seed.
type Schedule =
    | Free of run: int
    | Controlled of seed: int * switchPercent: int

    override s.ToString() =
        match s with
        | Free r -> sprintf "free run %d on real threads" r
        | Controlled(seed, p) -> sprintf "controlled schedule seed %d (switch %d%%)" seed p

type Observation =
    {
        Schedule: Schedule
        PrefixResults: string list
        History: Op<Command>[]
        /// Budget breaches seen while the threads ran (first few).
        BudgetBreaches: string list
        /// Instants over the budget only by buffers whose budget was already returned (F-DMA-6), seen or not.
        OverByReturnedBudget: bool
        Final: string list
        /// Controlled runs: how the run ended and its trace. Free runs: Completed and no trace.
        Ending: ControlledScheduler.Ending
        Trace: (int * string) list
    }

/// What one consistent instant of the bounce bookkeeping (MemorySystem.SnapshotBounce) says about the
/// budget: within it; over it only by buffers whose budget unmap has already returned (QEMU from 9.2
/// returns the budget before it frees the buffer: registered finding F-DMA-6); or breached.
type BudgetState =
    | Within
    | OverByReturnedBudget of string
    | Breach of string

let budgetState (sys: MemorySystem) : BudgetState =
    let snap = sys.SnapshotBounce()

    if sys.Profile = Profile.Qemu72 then
        let bytes = snap.Spaces |> Seq.sumBy (fun s -> s.Allocated)

        if snap.Buffers > 1 then
            Breach(sprintf "%d bounce buffers exist at once (Qemu72 has one)" snap.Buffers)
        elif bytes > int64 ProfileFacts.TargetPageSize then
            Breach(sprintf "%d bounce bytes exist at once (Qemu72: one page)" bytes)
        else
            Within
    else
        let over =
            snap.Spaces
            |> Seq.filter (fun s -> s.Allocated > int64 s.Space.MaxBounceBufferSize)
            |> List.ofSeq

        match
            over
            |> List.tryFind (fun s -> s.Allocated - s.Freeing > int64 s.Space.MaxBounceBufferSize)
        with
        | Some s ->
            Breach(
                sprintf
                    "%s has %d bounce bytes allocated (%d of them with their budget returned), over its budget of %d"
                    s.Space.Name
                    s.Allocated
                    s.Freeing
                    s.Space.MaxBounceBufferSize
            )
        | None ->
            match over with
            | s :: _ ->
                OverByReturnedBudget(
                    sprintf
                        "%s: %d bounce bytes exist, over the budget of %d by buffers whose budget was returned (F-DMA-6)"
                        s.Space.Name
                        s.Allocated
                        s.Space.MaxBounceBufferSize
                )
            | [] -> Within

/// The bounce budget breached at one instant, or None.
let budgetBreach (sys: MemorySystem) : string option =
    match budgetState sys with
    | Breach b -> Some b
    | _ -> None

/// Everything the balance property compares, one line per fact, in a canonical order.
let finalState (sys: MemorySystem) : string list =
    let hex (b: byte[]) =
        Convert.ToHexString(Security.Cryptography.SHA256.HashData b).[..15]

    [ for o in sys.Owners |> Seq.sortBy (fun o -> o.Name) do
          yield sprintf "refs %s %d" o.Name o.RefCount
      for c in [ DirtyClient.Migration ] do
          yield sprintf "dirty %A pages [%s]" c (String.Join(",", sys.Dirty.Pages c |> Seq.sort))
      for r in sys.Regions |> Seq.sortBy (fun r -> r.Name) do
          match Option.ofObj r.RamBlock, Option.ofObj r.Device with
          | Some b, _ ->
              for KeyValue(off, page) in b.Bytes.ModifiedPages() do
                  yield sprintf "ram %s page 0x%x %s" r.Name off (hex page)
          | None, Some d ->
              for KeyValue(off, page) in d.Storage.ModifiedPages() do
                  yield sprintf "device %s page 0x%x %s" r.Name off (hex page)
          | _ -> ()
      for a in sys.AddressSpaces do
          yield sprintf "clients %s [%s]" a.Name (String.Join(",", sys.RegisteredMapClients a))

          if sys.Profile = Profile.Qemu92 then
              yield sprintf "bounce %s reserved %d allocated %d" a.Name a.BounceBufferSize a.BounceBytesAllocated
      if sys.Profile = Profile.Qemu72 then
          yield sprintf "bounce in use %b, buffers %d" sys.GlobalBounceInUse sys.BounceBuffersAllocated
      yield sprintf "bottom halves [%s]" (String.Join(",", sys.PendingBottomHalves |> Seq.sort))
      yield sprintf "live mappings %d" sys.LiveMappings.Count ]

/// A fresh instance of the target under test.
let private newSystem (target: Conformance.Model.Targets.IInProcessTarget) (profile: Profile) = target.NewSystem(layout, profile)

/// The sequential specification's instance: the reference model itself, not the target (the oracle of
/// linearizability is the model's own sequential behaviour).
let private specSystem (profile: Profile) = MemorySystem(layout, profile)

let private runPrefix (sys: MemorySystem) (c: ParallelCase) =
    let a0 = Actor 0
    c.Prefix |> List.collect (step sys a0)

/// Runs one actor's commands, stamping each with the shared logical clock.
let private actorBody (sys: MemorySystem) (clock: int64 ref) (ops: Collections.Generic.List<Op<Command>>) (index: int) (cmds: Command list) () =
    let actor = Actor index
    let mutable seq = 0

    for c in cmds do
        let invoked = Interlocked.Increment(&clock.contents)
        let results = step sys actor c
        let returned = Interlocked.Increment(&clock.contents)

        results
        |> List.iteri (fun half r ->
            ops.Add
                { Actor = index
                  Seq = seq
                  Command = c
                  Half = half
                  Result = r
                  Invoked = invoked
                  Returned = returned }

            seq <- seq + 1)

let private collect (perThread: Collections.Generic.List<Op<Command>>[]) =
    perThread |> Array.collect (fun l -> l.ToArray())

/// Free run: the threads wait at a spinning barrier so they start together; an observer samples the
/// budget until they finish. A thread still running after `timeout` is reported, never waited for.
let runFree (target: Conformance.Model.Targets.IInProcessTarget) (c: ParallelCase) (run: int) : Observation =
    let sys = newSystem target c.Profile
    let prefix = runPrefix sys c
    let n = c.Threads.Length
    let clock = ref 0L
    let perThread = Array.init n (fun _ -> Collections.Generic.List<Op<Command>>())
    let breaches = Collections.Concurrent.ConcurrentQueue<string>()
    let errors = Collections.Concurrent.ConcurrentQueue<string>()
    let mutable arrived = 0
    let mutable finished = 0

    let bodies =
        c.Threads
        |> List.mapi (fun i cmds ->
            fun () ->
                Interlocked.Increment(&arrived) |> ignore
                let spin = SpinWait()

                while Volatile.Read(&arrived) < n do
                    spin.SpinOnce()

                try
                    try
                        actorBody sys clock perThread.[i] (i + 1) cmds ()
                    with e ->
                        errors.Enqueue(sprintf "thread %d threw %s: %s" (i + 1) (e.GetType().Name) e.Message)
                finally
                    Interlocked.Increment(&finished) |> ignore)

    let mutable overByReturned = false

    let observer () =
        while Volatile.Read(&finished) < n do
            match budgetState sys with
            | Breach b when breaches.Count < 3 -> breaches.Enqueue b
            | OverByReturnedBudget _ -> overByReturned <- true
            | _ -> ()

            Thread.Yield() |> ignore

    let hung = not (ThreadGang.run (observer :: bodies) (TimeSpan.FromSeconds 10.0))

    let ending =
        match List.ofSeq errors with
        | e :: _ -> ControlledScheduler.Threw(0, Exception e)
        | [] when hung -> ControlledScheduler.StepBound 0
        | [] -> ControlledScheduler.Completed

    { Schedule = Free run
      PrefixResults = prefix
      History = collect perThread
      BudgetBreaches =
        List.ofSeq breaches
        |> List.append (Option.toList (budgetBreach sys))
        |> List.distinct
      OverByReturnedBudget = overByReturned
      Final = finalState sys
      Ending = ending
      Trace = [] }

/// Controlled run: the scheduler picks the interleaving from the seed and checks the budget after
/// every point.
let runControlled (target: Conformance.Model.Targets.IInProcessTarget) (c: ParallelCase) (seed: int) (switchPercent: int) : Observation =
    let sys = newSystem target c.Profile
    let prefix = runPrefix sys c
    let clock = ref 0L

    let perThread =
        Array.init c.Threads.Length (fun _ -> Collections.Generic.List<Op<Command>>())

    let breaches = Collections.Generic.List<string>()

    let mutable overByReturned = false

    let observe () =
        match budgetState sys with
        | Breach b when breaches.Count < 3 && not (breaches.Contains b) -> breaches.Add b
        | OverByReturnedBudget _ -> overByReturned <- true
        | _ -> ()

    let scheduler = ControlledScheduler.Scheduler(seed, switchPercent, 50_000, observe)
    sys.Interleaver <- scheduler

    let run =
        scheduler.Run(
            c.Threads
            |> List.mapi (fun i cmds -> actorBody sys clock perThread.[i] (i + 1) cmds)
        )

    sys.Interleaver <- null
    observe ()

    { Schedule = Controlled(seed, switchPercent)
      PrefixResults = prefix
      History = collect perThread
      BudgetBreaches = List.ofSeq breaches
      OverByReturnedBudget = overByReturned
      Final = finalState sys
      Ending = run.Ending
      Trace = run.Trace |> List.skip (max 0 (run.Trace.Length - 60)) }

/// The sequential specification: the reference model, unmaps split into their two halves.
let specification (c: ParallelCase) : Spec<Command> * (unit -> MemorySystem) =
    let mutable sys = specSystem c.Profile
    let mutable actors = [||]

    let reset () =
        sys <- specSystem c.Profile
        actors <- Array.init (c.Threads.Length + 1) Actor
        c.Prefix |> List.iter (fun cmd -> step sys actors.[0] cmd |> ignore)

    let fingerprint () =
        let sb = Text.StringBuilder()

        for a in sys.AddressSpaces do
            sb.Append(a.BounceBufferSize).Append('/').Append(String.Join(",", sys.RegisteredMapClients a)).Append(';')
            |> ignore

        sb.Append(sys.GlobalBounceInUse).Append('|').Append(String.Join(",", sys.PendingBottomHalves |> Seq.sort))
        |> ignore

        for a in actors do
            sb
                .Append('|')
                .Append(
                    match a.PendingNotify with
                    | Some s -> s.Name
                    | None -> "-"
                )
            |> ignore

        sb.ToString()

    reset ()

    { Reset = reset
      Apply = fun op -> stepHalf sys actors.[op.Actor] op.Command op.Half
      Fingerprint = fingerprint },
    (fun () -> sys)

/// The spec's prefix results (what the sequential model returns for the prefix alone).
let specPrefix (c: ParallelCase) =
    let sys = specSystem c.Profile
    runPrefix sys c

let renderHistory (h: Op<Command>[]) =
    [ for op in h |> Array.sortBy (fun o -> o.Actor, o.Seq) ->
          sprintf
              "thread %d [%d..%d] %s%s -> %s"
              op.Actor
              op.Invoked
              op.Returned
              (describe op.Command)
              (match op.Command with
               | Unmap _ -> (if op.Half = 0 then " (release)" else " (notify)")
               | _ -> "")
              op.Result ]
