/// The concurrency properties (P20-P23) on the reference model, and each one rejecting its broken
/// variants. CONFORMANCE_PARALLEL_CASES sets the cases per property (default 200) and
/// CONFORMANCE_PARALLEL_RUNS the free runs and controlled schedules per case (default 20 each).
module Conformance.Properties.Tests.ConcurrencyPropertyTests

open System
open Xunit
open Xunit.Abstractions
open Conformance.Model
open Conformance.Properties

let runParallel (output: ITestOutputHelper) (name: string) (profile: Profile) =
    let entry = (ParallelCatalogue.find name).Value
    let replay = Runner.replayFromEnvironment ()
    let cases = ParallelCatalogue.defaultCases ()
    let outcome = entry.Check ParallelCatalogue.Reference profile cases replay

    let report =
        ParallelCatalogue.report entry profile ParallelCatalogue.Reference outcome

    output.WriteLine report

    if not outcome.Passed then
        failwith ("\n" + report)

    Assert.True(outcome.Tests >= (if replay.IsSome then 1 else cases), "fewer cases than configured ran")

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

/// Each concurrency property must reject each of its broken variants within the default run, with a
/// violation (not an exception), shrunk to a few commands.
type ConcurrencyBrokenVariantTests(output: ITestOutputHelper) =
    static member Cases: obj[] seq =
        seq {
            for e in ParallelCatalogue.all do
                for p in [ Profile.Qemu72; Profile.Qemu92 ] do
                    for v in e.Broken p do
                        yield [| box e.Name; box p; box (string v) |]
        }

    [<Theory>]
    [<MemberData(nameof ConcurrencyBrokenVariantTests.Cases)>]
    member _.property_rejects_its_broken_variant(name: string, profile: Profile, variant: string) =
        let entry = (ParallelCatalogue.find name).Value
        let v = entry.Broken profile |> List.find (fun v -> string v = variant)
        let outcome = entry.Check v profile (ParallelCatalogue.defaultCases ()) None
        output.WriteLine(ParallelCatalogue.report entry profile v outcome)
        Assert.False(outcome.Passed, sprintf "%s did not catch the %s in %d cases" name variant outcome.Tests)
        Assert.False(outcome.Message.StartsWith "the property threw", "the failure must be a violation, not an exception: " + outcome.Message)
        // Shrunk: a handful of threads and commands (the rendered case has a header line per actor).
        let lines = outcome.Counterexample.Value
        Assert.True(lines.Length <= 16, sprintf "the shrunk case is still %d lines:\n%s" lines.Length (String.Join("\n", lines)))
