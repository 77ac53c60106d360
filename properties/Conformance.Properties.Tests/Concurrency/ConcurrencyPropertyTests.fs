/// The concurrency properties (P20-P24) on the reference model (their broken variants are in
/// BrokenVariantTests with every other property's). CONFORMANCE_PARALLEL_CASES sets the cases per property (default 300) and
/// CONFORMANCE_PARALLEL_RUNS the free runs and controlled schedules per case (default 20 each).
module Conformance.Properties.Tests.ConcurrencyPropertyTests

open System
open Xunit
open Xunit.Abstractions
open Conformance.Model
open Conformance.Properties

/// One catalogue, one runner: the concurrency properties run like every other, with their own case count.
let runParallel (output: ITestOutputHelper) (name: string) (profile: Profile) =
    DmaPropertyTests.runEntryWith (Runner.defaultCases (Catalogue.find name).Value) output name profile

type ConcurrencyPropertyTests(output: ITestOutputHelper) =
    let run = runParallel output

    [<Fact>]
    member _.linearizability_Qemu72() = run "linearizability" Profile.Qemu72

    [<Fact>]
    member _.linearizability_Qemu92() = run "linearizability" Profile.Qemu92

    [<Fact>]
    member _.bounce_budget_Qemu72() = run "bounce-budget" Profile.Qemu72

    [<Fact>]
    member _.bounce_budget_Qemu92() = run "bounce-budget" Profile.Qemu92

    [<Fact>]
    member _.no_lost_wakeup_Qemu72() = run "no-lost-wakeup" Profile.Qemu72

    [<Fact>]
    member _.no_lost_wakeup_Qemu92() = run "no-lost-wakeup" Profile.Qemu92

    [<Fact>]
    member _.balance_under_contention_Qemu72() =
        run "balance-under-contention" Profile.Qemu72

    [<Fact>]
    member _.balance_under_contention_Qemu92() =
        run "balance-under-contention" Profile.Qemu92

    [<Fact>]
    member _.parallel_virtqueues_Qemu72() =
        run "parallel-virtqueues" Profile.Qemu72

    [<Fact>]
    member _.parallel_virtqueues_Qemu92() =
        run "parallel-virtqueues" Profile.Qemu92

/// An interleaver that runs an action once, the first time the model reaches a given point.
type private OnceAt(point: string, action: unit -> unit) =
    let mutable fired = false

    interface IInterleaver with
        member _.Point(what) =
            if what = point && not fired then
                fired <- true
                action ()

        member _.Blocked(_) = ()

/// The system of the tests below: 64 KiB of MMIO (a device) at 1 MiB and nothing else.
let private deviceAt1MiB =
    LayoutBuilding.Spec.OneSpace [ LayoutBuilding.Spec.Region("dev", RegionKind.Io, Oracle.u128 0x10000UL, 0x100000UL) ]

/// F-DMA-6 (UM-2): from QEMU 9.2 unmap returns a buffer's budget before freeing it, so a map in between gets
/// the budget while the old buffer still exists: more bounce memory exists than the budget. P21 counts such
/// instants as the registered finding, and a real breach (the budget double-returned) still as a breach.
[<Fact>]
let ``F-DMA-6: between returning the budget and freeing the buffer another map can allocate`` () =
    let layout = deviceAt1MiB

    let states (fault: Fault) =
        let sys = MemorySystem(layout, Profile.Qemu92, fault)
        let mem = sys.Space "memory"
        let first = sys.Map(mem, 0x100000UL, 4096UL, false)
        Assert.True first.Succeeded
        let seen = ResizeArray<ParallelExecution.BudgetState>()

        sys.Interleaver <-
            OnceAt(
                "free bounce buffer",
                fun () ->
                    let second = sys.Map(mem, 0x101000UL, 4096UL, false)
                    Assert.True(second.Succeeded, "the returned budget was not there for another map")
                    seen.Add(ParallelExecution.budgetState sys)
            )

        sys.Unmap(first.Mapping, 0UL) |> ignore
        sys.Interleaver <- null
        seen.Add(ParallelExecution.budgetState sys)
        List.ofSeq seen

    match states Fault.None with
    | [ ParallelExecution.OverByReturnedBudget why; ParallelExecution.Within ] -> Assert.Contains("F-DMA-6", why)
    | other -> failwithf "expected the finding, then within the budget: %A" other
    // QEMU 7.2 frees first: no such instant
    let sys72 = MemorySystem(layout, Profile.Qemu72)
    let m = sys72.Map(sys72.Space "memory", 0x100000UL, 4096UL, false)
    sys72.Interleaver <- OnceAt("release bounce space", fun () -> Assert.Equal(0, sys72.SnapshotBounce().Buffers))
    sys72.Unmap(m.Mapping, 0UL) |> ignore

/// An interleaver that lets the one thread run on and keeps the points it passed, as a schedule in a report does.
type private PointsPassed() =
    let passed = Collections.Generic.List<string>()
    member _.Passed = List.ofSeq passed

    interface IInterleaver with
        member _.Point(what) = passed.Add what
        member _.Blocked(what) = passed.Add what

/// physmem.c takes map_client_list_lock around every use of the map-client list (register, unregister,
/// notify: QEMU_LOCK_GUARD), and a counterexample's schedule names it; with the UnlockedClientList broken
/// variant no use takes it.
[<Theory>]
[<InlineData(false)>]
[<InlineData(true)>]
let ``every use of the map-client list is under map_client_list_lock, named as QEMU names it`` (broken: bool) =
    let layout = deviceAt1MiB

    for profile in [ Profile.Qemu72; Profile.Qemu92 ] do
        let sys =
            MemorySystem(layout, profile, (if broken then Fault.UnlockedClientList else Fault.None))

        let mem = sys.Space "memory"
        // the bounce space is taken, so a registration waits rather than being scheduled at once
        let taken = sys.Map(mem, 0x100000UL, 4096UL, false)
        Assert.True taken.Succeeded

        let lockedBy (action: unit -> unit) =
            let points = PointsPassed()
            sys.Interleaver <- points
            action ()
            sys.Interleaver <- null
            points.Passed |> List.filter (fun p -> p.Contains "lock")

        let expected = if broken then [] else [ "lock map_client_list_lock" ]
        Assert.Equal<string list>(expected, lockedBy (fun () -> sys.RegisterMapClient(mem, "a") |> ignore))
        Assert.Equal<string list>(expected, lockedBy (fun () -> sys.RegisterMapClient(mem, "b") |> ignore))
        Assert.Equal<string list>(expected, lockedBy (fun () -> sys.UnregisterMapClient(mem, "b") |> ignore))
        Assert.Equal<string list>(expected, lockedBy (fun () -> sys.NotifyMapClients mem |> ignore))
        Assert.Equal<string list>([ "a" ], List.ofSeq (sys.RunBottomHalves()))

/// An interleaver under which a thread that has to wait is a failure: one thread runs at a time here, so a
/// wait could never end.
type private NeverWaits() =
    interface IInterleaver with
        member _.Point(_) = ()
        member _.Blocked(what) = failwithf "blocked: %s" what

/// The journal of device callbacks is changed under the BQL, as device callbacks append to it (prepare_mmio_access):
/// clearing and trimming it take the BQL and give it back, so another thread's device access afterwards
/// does not wait for a BQL nobody holds.
[<Fact>]
let ``clearing and trimming the callback journal give the BQL back`` () =
    let sys = MemorySystem(deviceAt1MiB, Profile.Qemu92)

    let mem = sys.Space "memory"
    sys.Interleaver <- NeverWaits()
    sys.ClearAccessJournal()
    sys.TrimAccessJournal 0
    sys.Write(mem, 0x100000UL, ReadOnlySpan [| 1uy; 2uy; 3uy; 4uy |])
    // another thread's device access
    let mutable failure: exn = null

    let other =
        Threading.Thread(fun () ->
            try
                sys.Write(mem, 0x100004UL, ReadOnlySpan [| 5uy; 6uy; 7uy; 8uy |])
            with e ->
                failure <- e)

    other.Start()
    other.Join()
    Assert.Null failure
    sys.Interleaver <- null
    Assert.Equal(2, sys.AccessJournal.Count)
