/// The DMA property catalogue against the reference model, for both profiles. Each test prints its case
/// distribution; a failure prints the shrunk scenario, its trace and the command that replays it.
/// CONFORMANCE_MAX_TEST sets the number of cases (default 5,000); CONFORMANCE_REPLAY replays one case.
module Conformance.Properties.Tests.DmaPropertyTests

open System
open Xunit
open Xunit.Abstractions
open Conformance.Model
open Conformance.Properties

/// Runs one catalogue entry on the reference model for `maxTest` cases (a replay token in the environment
/// runs just that case); shared by the DMA, virtio and long test classes.
let runEntryWith (maxTest: int) (output: ITestOutputHelper) (name: string) (profile: Profile) =
    let entry = (Catalogue.find name).Value
    let replay = Runner.replayFromEnvironment ()

    let outcome =
        Runner.check entry profile Conformance.Model.Targets.ModelTarget.Reference maxTest replay
        |> Runner.record

    let report = Runner.report outcome Conformance.Model.Targets.ModelTarget.Reference
    output.WriteLine report

    if not outcome.Passed then
        failwith ("\n" + report)

    Assert.True(outcome.Tests >= (if replay.IsSome then 1 else maxTest), "fewer cases than configured ran")

let runEntry (output: ITestOutputHelper) =
    runEntryWith (Runner.defaultMaxTest ()) output

type DmaPropertyTests(output: ITestOutputHelper) =
    let run = runEntry output

    [<Fact>]
    member _.refcount_balance_Qemu72() = run "refcount-balance" Profile.Qemu72

    [<Fact>]
    member _.refcount_balance_Qemu92() = run "refcount-balance" Profile.Qemu92

    [<Fact>]
    member _.write_back_on_unmap_Qemu72() =
        run "write-back-on-unmap" Profile.Qemu72

    [<Fact>]
    member _.write_back_on_unmap_Qemu92() =
        run "write-back-on-unmap" Profile.Qemu92

    [<Fact>]
    member _.read_at_map_Qemu72() = run "read-at-map" Profile.Qemu72

    [<Fact>]
    member _.read_at_map_Qemu92() = run "read-at-map" Profile.Qemu92

    [<Fact>]
    member _.dirty_exactness_Qemu72() = run "dirty-exactness" Profile.Qemu72

    [<Fact>]
    member _.dirty_exactness_Qemu92() = run "dirty-exactness" Profile.Qemu92

    [<Fact>]
    member _.map_length_Qemu72() = run "map-length" Profile.Qemu72

    [<Fact>]
    member _.map_length_Qemu92() = run "map-length" Profile.Qemu92

    [<Fact>]
    member _.bounce_exclusivity_Qemu72() = run "bounce-exclusivity" Profile.Qemu72

    [<Fact>]
    member _.bounce_exclusivity_Qemu92() = run "bounce-exclusivity" Profile.Qemu92

    [<Fact>]
    member _.map_clients_Qemu72() = run "map-clients" Profile.Qemu72

    [<Fact>]
    member _.map_clients_Qemu92() = run "map-clients" Profile.Qemu92

    [<Fact>]
    member _.approaches_agree_Qemu72() = run "approaches-agree" Profile.Qemu72

    [<Fact>]
    member _.approaches_agree_Qemu92() = run "approaches-agree" Profile.Qemu92

    [<Fact>]
    member _.no_invented_bytes_Qemu72() = run "no-invented-bytes" Profile.Qemu72

    [<Fact>]
    member _.no_invented_bytes_Qemu92() = run "no-invented-bytes" Profile.Qemu92

    [<Fact>]
    member _.flattening_Qemu72() = run "flattening" Profile.Qemu72

    [<Fact>]
    member _.flattening_Qemu92() = run "flattening" Profile.Qemu92

/// The virtqueue catalogue (issue: split virtqueue and virtio-blk) on the reference model.
type VirtioPropertyTests(output: ITestOutputHelper) =
    let run = runEntry output

    [<Fact>]
    member _.element_conservation_Qemu72() =
        run "element-conservation" Profile.Qemu72

    [<Fact>]
    member _.element_conservation_Qemu92() =
        run "element-conservation" Profile.Qemu92

    [<Fact>]
    member _.mapping_balance_Qemu72() = run "mapping-balance" Profile.Qemu72

    [<Fact>]
    member _.mapping_balance_Qemu92() = run "mapping-balance" Profile.Qemu92

    [<Fact>]
    member _.written_length_Qemu72() = run "written-length" Profile.Qemu72

    [<Fact>]
    member _.written_length_Qemu92() = run "written-length" Profile.Qemu92

    [<Fact>]
    member _.used_ring_Qemu72() = run "used-ring" Profile.Qemu72

    [<Fact>]
    member _.used_ring_Qemu92() = run "used-ring" Profile.Qemu92

    [<Fact>]
    member _.malformed_rings_Qemu72() = run "malformed-rings" Profile.Qemu72

    [<Fact>]
    member _.malformed_rings_Qemu92() = run "malformed-rings" Profile.Qemu92

    [<Fact>]
    member _.malformed_verdicts_Qemu72() = run "malformed-verdicts" Profile.Qemu72

    [<Fact>]
    member _.malformed_verdicts_Qemu92() = run "malformed-verdicts" Profile.Qemu92

    [<Fact>]
    member _.notification_Qemu72() = run "notification" Profile.Qemu72

    [<Fact>]
    member _.notification_Qemu92() = run "notification" Profile.Qemu92

    [<Fact>]
    member _.blk_requests_Qemu72() = run "blk-requests" Profile.Qemu72

    [<Fact>]
    member _.blk_requests_Qemu92() = run "blk-requests" Profile.Qemu92

    [<Fact>]
    member _.used_length_honesty_Qemu72() =
        run "used-length-honesty" Profile.Qemu72

    [<Fact>]
    member _.used_length_honesty_Qemu92() =
        run "used-length-honesty" Profile.Qemu92

    [<Fact>]
    member _.kick_suppression_Qemu72() = run "kick-suppression" Profile.Qemu72

    [<Fact>]
    member _.kick_suppression_Qemu92() = run "kick-suppression" Profile.Qemu92

/// The malformed-ring property at 100,000 random rings per profile (the issue's bar). Category "Long":
/// CI runs it; `dotnet test --filter "Category!=Long"` leaves it out of a quick local run.
type LongVirtioTests(output: ITestOutputHelper) =
    let run100k = runEntryWith 100000 output "malformed-rings"

    [<Fact; Trait("Category", "Long")>]
    member _.malformed_rings_100k_Qemu72() = run100k Profile.Qemu72

    [<Fact; Trait("Category", "Long")>]
    member _.malformed_rings_100k_Qemu92() = run100k Profile.Qemu92

/// Every catalogue entry has a test above for each profile (a new property cannot go untested).
type CatalogueBindingTests() =
    [<Fact>]
    member _.every_catalogue_entry_is_bound() =
        // the classes that run catalogue entries: DmaPropertyTests, VirtioPropertyTests, ConcurrencyPropertyTests
        let methods =
            Reflection.Assembly.GetExecutingAssembly().GetTypes()
            |> Array.filter (fun t -> t.Name.EndsWith "PropertyTests")
            |> Array.collect (fun t -> t.GetMethods() |> Array.map (fun m -> m.Name))
            |> Set.ofArray

        for e in Catalogue.all do
            for p in [ Profile.Qemu72; Profile.Qemu92 ] do
                Assert.Contains(Runner.testName e p, methods)
