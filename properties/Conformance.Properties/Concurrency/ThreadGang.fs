/// Long-lived threads that run one batch of bodies at a time. A concurrency case runs dozens of times and
/// each run is far shorter than starting an OS thread (measured here: ~0.5 ms per thread under load), so
/// runs borrow a gang from a pool instead of starting threads.
module Conformance.Properties.ThreadGang

open System
open System.Threading

let Size = 6

type Gang() =
    let work: (unit -> unit)[] = Array.create Size ignore
    let starts = Array.init Size (fun _ -> new SemaphoreSlim(0))
    let mutable pending: CountdownEvent = null

    let threads =
        Array.init Size (fun i ->
            let t =
                Thread(
                    (fun () ->
                        while true do
                            starts.[i].Wait()

                            try
                                work.[i] ()
                            with _ ->
                                () // bodies report their own failures

                            pending.Signal() |> ignore),
                    IsBackground = true,
                    Name = sprintf "gang-%d" i
                )

            t.Start()
            t)

    /// Runs the bodies on threads 0..n-1 at once; false if they did not all finish within `timeout`
    /// (the gang is then unusable and must not go back to the pool).
    member _.Run(bodies: (unit -> unit) list, timeout: TimeSpan) : bool =
        if bodies.Length > Size then
            invalidArg "bodies" (sprintf "a gang has %d threads" Size)

        pending <- new CountdownEvent(max 1 bodies.Length)

        if bodies.IsEmpty then
            pending.Signal() |> ignore

        bodies
        |> List.iteri (fun i b ->
            work.[i] <- b
            starts.[i].Release() |> ignore)

        pending.Wait timeout

let private pool = Collections.Concurrent.ConcurrentBag<Gang>()

/// Runs the bodies on a pooled gang; false if they timed out (that gang is abandoned to its stuck threads,
/// which are background threads and end with the process).
let run (bodies: (unit -> unit) list) (timeout: TimeSpan) : bool =
    let gang =
        match pool.TryTake() with
        | true, g -> g
        | _ -> Gang()

    let finished = gang.Run(bodies, timeout)

    if finished then
        pool.Add gang

    finished
