/// A seeded scheduler for the model's interleaving points: logical threads are real threads, but only one
/// runs at a time and the seed decides, at every point, whether it goes on or another one runs. The same
/// seed gives the same interleaving, so a concurrency failure replays exactly (the reason this suite does
/// not need Coyote's binary rewriting: the model announces its own interleaving points).
module Conformance.Properties.ControlledScheduler

open System
open System.Threading
open Conformance.Model

/// How a controlled run ended.
type Ending =
    | Completed
    /// Every unfinished thread waits for something only another waiting thread could do.
    | Deadlock of waiting: string list
    /// The step bound was reached (a livelock, or a bound too small for the case).
    | StepBound of int
    | Threw of thread: int * exn

type Run =
    {
        Ending: Ending
        Steps: int
        /// (thread, what it was about to do), in the order the scheduler let them run.
        Trace: (int * string) list
    }

exception private Aborted

/// One controlled execution. `switchPercent` is the chance that an interleaving point hands over to
/// another thread; `onStep` runs after every point (an observer seeing every intermediate state).
type Scheduler(seed: int, switchPercent: int, maxSteps: int, onStep: unit -> unit) =
    let rng = Random(seed)
    let trace = Collections.Generic.List<int * string>()
    let mutable gates: SemaphoreSlim[] = [||]
    let mutable finished: bool[] = [||]
    let mutable blocked: bool[] = [||]
    let mutable blockedAtProgress: int[] = [||]
    let mutable lastWasBlocked: bool[] = [||]
    let mutable waitingFor: string[] = [||]
    let mutable progress = 0
    let mutable current = -1
    let mutable steps = 0
    let mutable ending = Completed
    let mutable aborted = false
    let finishing = obj ()

    let unfinished () =
        [ for i in 0 .. finished.Length - 1 do
              if not finished.[i] then
                  yield i ]

    /// Hands the processor to `next` and parks the caller until it is chosen again.
    let switchTo (me: int) (next: int) =
        current <- next
        gates.[next].Release() |> ignore
        gates.[me].Wait()

        if aborted then
            raise Aborted

    let abort (why: Ending) =
        if not aborted then
            ending <- why
            aborted <- true

            for g in gates do
                g.Release() |> ignore

    let yieldFrom (isBlocked: bool) (what: string) =
        let me = current

        if aborted then
            raise Aborted

        trace.Add((me, what))
        steps <- steps + 1
        // A blocked thread re-checking its condition makes no progress; anything else might have.
        if not (isBlocked && lastWasBlocked.[me]) then
            progress <- progress + 1

        lastWasBlocked.[me] <- isBlocked
        blocked.[me] <- isBlocked

        if isBlocked then
            blockedAtProgress.[me] <- progress
            waitingFor.[me] <- what

        (try
            onStep ()
         with e ->
             abort (Threw(me, e))
             raise Aborted)

        if steps >= maxSteps then
            abort (StepBound steps)
            raise Aborted

        let live = unfinished ()

        if
            isBlocked
            && live |> List.forall (fun i -> blocked.[i] && blockedAtProgress.[i] = progress)
        then
            abort (Deadlock [ for i in live -> sprintf "thread %d: %s" i waitingFor.[i] ])
            raise Aborted

        let others = live |> List.filter (fun i -> i <> me)

        if not others.IsEmpty && (isBlocked || rng.Next 100 < switchPercent) then
            switchTo me (others.[rng.Next others.Length])

    interface IInterleaver with
        member _.Point(what) = yieldFrom false what
        member _.Blocked(what) = yieldFrom true what

    /// Runs the bodies as logical threads 0..n-1 to the end (or to an abort) and reports how it went.
    member this.Run(bodies: (unit -> unit) list) : Run =
        let n = bodies.Length
        gates <- Array.init n (fun _ -> new SemaphoreSlim(0))
        finished <- Array.zeroCreate n
        blocked <- Array.zeroCreate n
        blockedAtProgress <- Array.zeroCreate n
        lastWasBlocked <- Array.zeroCreate n
        waitingFor <- Array.create n ""

        let wrapped =
            bodies
            |> List.mapi (fun i body ->
                fun () ->
                    gates.[i].Wait()

                    try
                        try
                            if not aborted then
                                body ()
                        with
                        | Aborted -> ()
                        | e -> abort (Threw(i, e))
                    finally
                        lock finishing (fun () ->
                            finished.[i] <- true
                            progress <- progress + 1

                            match unfinished () with
                            | live when not aborted && not live.IsEmpty ->
                                let next = live.[rng.Next live.Length]
                                current <- next
                                gates.[next].Release() |> ignore
                            | _ -> ()))

        if n > 0 then
            current <- rng.Next n
            gates.[current].Release() |> ignore
        // Every step hands over synchronously; a run that stops moving for this long is a harness bug.
        if not (ThreadGang.run wrapped (TimeSpan.FromSeconds 30.0)) then
            abort (StepBound steps)

        { Ending = ending
          Steps = steps
          Trace = List.ofSeq trace }

/// The last `n` steps of a trace, one line each, for a failure report; `name` names logical thread i.
let renderTrace (name: int -> string) (n: int) (trace: (int * string) list) =
    let skipped = max 0 (trace.Length - n)

    [ if skipped > 0 then
          yield sprintf "... %d earlier steps" skipped
      for (t, what) in trace |> List.skip skipped do
          yield sprintf "%s: %s" (name t) what ]
