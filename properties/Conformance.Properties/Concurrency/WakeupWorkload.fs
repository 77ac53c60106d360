/// The no-lost-wake-up workload: N devices each perform their DMA requests to MMIO (so every request
/// needs bounce space) the way dma-helpers does — map; on failure register a map client and wait for its
/// bottom half, then retry — while a main loop runs the scheduled bottom halves. With QEMU's rules every
/// device finishes; a device left waiting with nobody to wake it is a lost wake-up.
module Conformance.Properties.WakeupWorkload

open System
open System.Threading
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Properties.ParallelCommands

type Request =
    { Space: int
      Offset: int
      Length: int
      Write: bool }

type WakeupCase =
    { Profile: Profile
      Devices: Request list list }

let render (c: WakeupCase) =
    [ yield sprintf "profile %A" c.Profile
      for i, d in List.indexed c.Devices do
          yield sprintf "device %d (client %s):" (i + 1) (clientName (i + 1))

          for r in d do
              yield sprintf "  %s %d bytes of mmio +0x%x via %s" (if r.Write then "write" else "read") r.Length r.Offset SpaceNames.[r.Space] ]

let genCase (profile: Profile) : Gen<WakeupCase> =
    let genRequest =
        gen {
            let! space = Gen.frequency [ 4, Gen.constant 0; 1, Gen.constant 1 ]
            let! offset = Gen.frequency [ 3, Gen.constant 0; 1, Gen.choose (1, 4095) ]
            let! length = Gen.frequency [ 2, Gen.choose (1, 64); 2, Gen.choose (1024, 4096); 2, Gen.constant 4096 ]
            let! write = Gen.elements [ true; false ]

            return
                { Space = space
                  Offset = offset
                  Length = min length (SliceSize - offset)
                  Write = write }
        }

    gen {
        let! devices = Gen.choose (2, 4)
        let! requests = Gen.listOfLength devices (Gen.choose (1, 3) |> Gen.bind (fun k -> Gen.listOfLength k genRequest))

        return
            { Profile = profile
              Devices = requests }
    }

let shrinkCase (c: WakeupCase) : WakeupCase seq =
    let simpler (r: Request) =
        [ if r.Offset > 0 then
              yield { r with Offset = 0 }
          if r.Space > 0 then
              yield { r with Space = 0 }
          if r.Length > 1 then
              yield { r with Length = r.Length / 2 }
          if not r.Write then
              yield { r with Write = true } ]

    seq {
        if c.Devices.Length > 2 then
            for i in 0 .. c.Devices.Length - 1 do
                yield
                    { c with
                        Devices = List.removeAt i c.Devices }

        for i, d in List.indexed c.Devices do
            if d.Length > 1 then
                for j in 0 .. d.Length - 1 do
                    yield
                        { c with
                            Devices = c.Devices |> List.updateAt i (List.removeAt j d) }

        for i, d in List.indexed c.Devices do
            for j, r in List.indexed d do
                for r' in simpler r do
                    yield
                        { c with
                            Devices = c.Devices |> List.updateAt i (List.updateAt j r' d) }
    }

let arbCase profile =
    Arb.fromGenShrink (genCase profile, shrinkCase)

type Outcome =
    | AllDone
    /// Devices still waiting, with the machine's state when the run gave up on them.
    | LostWakeup of waiting: int list * state: string list
    | Failed of string

type WakeupRun =
    {
        Outcome: Outcome
        /// How many times a device had to wait, and how many wake-ups the main loop delivered.
        Waits: int
        Wakeups: int
        Trace: (int * string) list
    }

let private stateOf (sys: MemorySystem) =
    [ if sys.Profile = Profile.Qemu72 then
          yield
              sprintf
                  "map clients (one list for the system) [%s], bounce.in_use %b"
                  (String.Join(",", sys.RegisteredMapClients sys.AddressSpaces.[0]))
                  sys.GlobalBounceInUse
      else
          for a in sys.AddressSpaces do
              yield
                  sprintf
                      "%s: map clients [%s], bounce_buffer_size %d of %d"
                      a.Name
                      (String.Join(",", sys.RegisteredMapClients a))
                      a.BounceBufferSize
                      a.MaxBounceBufferSize
      yield sprintf "bottom halves pending [%s]" (String.Join(",", sys.PendingBottomHalves)) ]

/// Runs the workload once. `interleaver`: None runs free on real threads (a device waiting `patience`
/// for a wake-up that does not come is reported); Some runs under the controlled scheduler.
let run (target: Conformance.Model.Targets.IInProcessTarget) (c: WakeupCase) (controlled: (int * int) option) : WakeupRun =
    let sys = target.NewSystem(layout, c.Profile)
    let n = c.Devices.Length
    let woken = Array.zeroCreate<int> (n + 1)
    let waiting = Array.zeroCreate<int> (n + 1)
    let mutable finished = 0
    let mutable waits = 0
    let mutable wakeups = 0
    let patience = TimeSpan.FromSeconds 2.0

    let scheduler =
        controlled
        |> Option.map (fun (seed, pct) -> ControlledScheduler.Scheduler(seed, pct, 200_000, ignore))

    scheduler |> Option.iter (fun s -> sys.Interleaver <- s)
    let il = Option.ofObj sys.Interleaver

    let waitForWakeupLoop (d: int) =
        match il with
        | Some il ->
            while Volatile.Read(&woken.[d]) = 0 do
                il.Blocked "wait for the map-client bottom half"

            true
        | None ->
            let sw = Diagnostics.Stopwatch.StartNew()
            let spin = SpinWait()

            while Volatile.Read(&woken.[d]) = 0 && sw.Elapsed < patience do
                spin.SpinOnce(20)

            Volatile.Read(&woken.[d]) = 1

    let waitForWakeup (d: int) =
        Volatile.Write(&waiting.[d], 1)
        let ok = waitForWakeupLoop d
        Volatile.Write(&waiting.[d], 0)
        ok

    let lost = Collections.Concurrent.ConcurrentBag<int>()

    let device (d: int) (requests: Request list) () =
        try
            let mutable gaveUp = false

            for r in requests do
                let mutable served = false

                while not served && not gaveUp do
                    let space = sys.AddressSpaces.[r.Space]

                    let m =
                        sys.Map(space, MmioBase + uint64 (d * SliceSize + r.Offset), uint64 r.Length, r.Write)

                    if m.Succeeded then
                        if r.Write then
                            sys.WriteMapped(m.Mapping, 0UL, ReadOnlySpan(Array.create (int m.Length) (byte d)))

                        sys.Unmap(m.Mapping, m.Length) |> ignore
                        served <- true
                    else
                        Volatile.Write(&woken.[d], 0)
                        Interlocked.Increment(&waits) |> ignore
                        sys.RegisterMapClient(space, clientName d) |> ignore

                        if not (waitForWakeup d) then
                            lost.Add d
                            gaveUp <- true
        finally
            Interlocked.Increment(&finished) |> ignore

    let mainLoop () =
        let sw = Diagnostics.Stopwatch.StartNew()

        while Volatile.Read(&finished) < n && sw.Elapsed < patience + patience do
            let ran = sys.RunBottomHalves()

            if ran.Count = 0 then
                match il with
                | Some il -> il.Blocked "no bottom half scheduled"
                | None -> Thread.Yield() |> ignore
            else
                for bh in ran do
                    let d = Int32.Parse(bh.Substring 3)
                    Volatile.Write(&woken.[d], 1)
                    Interlocked.Increment(&wakeups) |> ignore

                il |> Option.iter (fun il -> il.Point "ran the bottom halves")

    let bodies =
        mainLoop :: (c.Devices |> List.mapi (fun i reqs -> device (i + 1) reqs))

    match scheduler with
    | Some s ->
        let r = s.Run bodies
        sys.Interleaver <- null

        let outcome =
            match r.Ending with
            | ControlledScheduler.Completed -> AllDone
            | ControlledScheduler.Deadlock _ ->
                LostWakeup(
                    [ for d in 1..n do
                          if Volatile.Read(&waiting.[d]) = 1 then
                              yield d ],
                    stateOf sys
                )
            | ControlledScheduler.StepBound k -> Failed(sprintf "no end after %d steps" k)
            | ControlledScheduler.Threw(t, e) -> Failed(sprintf "thread %d threw %s: %s" t (e.GetType().Name) e.Message)

        { Outcome = outcome
          Waits = waits
          Wakeups = wakeups
          Trace = r.Trace }
    | None ->
        let hung = not (ThreadGang.run bodies (TimeSpan.FromSeconds 10.0))

        let outcome =
            if hung then
                Failed "a thread did not finish within 10 s"
            elif not lost.IsEmpty then
                LostWakeup(List.ofSeq lost |> List.sort, stateOf sys)
            else
                AllDone

        { Outcome = outcome
          Waits = waits
          Wakeups = wakeups
          Trace = [] }
