/// Each property must reject the deliberately broken variant of the model it is meant to catch, within
/// the default number of cases, with a real violation (not an exception), shrunk to a small scenario.
module Conformance.Properties.Tests.BrokenVariantTests

open System
open Xunit
open Xunit.Abstractions
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties

/// How small each broken variant's shrunk counterexample must be: (operations, regions). Regions count
/// everything in the layout, including the "system" root and the "backing" RAM every generated layout has
/// (and "dev-root"/"dev-window" when the case needs a second address space).
let shrinkBounds =
    dict
        [ "refcount-balance", (3, 6)
          "write-back-on-unmap", (3, 6)
          "read-at-map", (3, 6)
          "dirty-exactness", (3, 8)
          "map-length", (3, 8)
          "bounce-exclusivity", (3, 6)
          "map-clients", (6, 6)
          "approaches-agree", (3, 8)
          "no-invented-bytes", (4, 6)
          "flattening", (1, 8)
          // virtqueue cases: the layout is fixed (system, ram, testdev, bios); random and malformed rings
          // are small by construction and not shrunk
          "element-conservation", (12, 4)
          "mapping-balance", (12, 4)
          "written-length", (12, 4)
          "used-ring", (12, 4)
          // a random ring's case is its setup, two writes and up to 16 + 2 pops (VirtioProperties.genRandomRing)
          "malformed-rings", (21, 4)
          "malformed-verdicts", (20, 4)
          "notification", (0, 4)
          // virtio-blk cases are a guest's request sequence (up to 5 requests of ~8 operations), not shrunk
          "blk-requests", (45, 4)
          "used-length-honesty", (45, 4)
          // shrunk by leaving out requests: down to the setup and one request
          "kick-suppression", (10, 4)
          // the differential's requests on QEMU's q35 machine: shrunk to one request, its setup, writes,
          // descriptors, kick, completion and read-backs (the layout is the machine's, checked below)
          "targets-agree", (10, Int32.MaxValue) ]

type BrokenVariantTests(output: ITestOutputHelper) =
    static member Cases: obj[] seq =
        seq {
            for e in Catalogue.all do
                for p in [ Profile.Qemu72; Profile.Qemu92 ] do
                    for v in e.Broken p do
                        yield [| box e.Name; box p; box v.OptionValue |]
        }

    /// Every property, sequential or concurrent, rejects each of its broken variants within the default
    /// number of cases, with a violation (not an exception), shrunk to a small case.
    [<Theory>]
    [<MemberData(nameof BrokenVariantTests.Cases)>]
    member _.property_rejects_its_broken_variant(name: string, profile: Profile, variant: string) =
        let entry = (Catalogue.find name).Value

        let broken =
            Conformance.Model.Targets.ModelTarget((Conformance.Model.Targets.Variant.Parse variant))

        let outcome =
            Runner.checkWith (Some Conformance.Model.Targets.ModelTarget.Reference) entry profile broken (Runner.defaultCases entry) None

        output.WriteLine(Runner.report outcome broken)
        Assert.False(outcome.Passed, sprintf "%s did not catch the %s in %d cases" name broken.Name outcome.Tests)
        Assert.False(outcome.Message.StartsWith "the property threw", "the failure must be a violation, not an exception: " + outcome.Message)

        match outcome.Counterexample with
        | Some s when s.IsConcurrent ->
            // a handful of threads and commands (the rendered case has a header line per actor)
            let lines = ConcurrentScenarios.render (ConcurrentScenarios.ofScenario s)
            Assert.True(lines.Length <= 16, sprintf "the shrunk case is still %d lines:\n%s" lines.Length (String.concat "\n" lines))
        | Some s ->
            // Shrinking must get the case small: a handful of operations and regions, bounded per property.
            let maxOps, maxRegions = shrinkBounds.[name]
            Assert.True(s.Ops.Count <= maxOps, sprintf "shrunk case still has %d operations (bound %d)\n%s" s.Ops.Count maxOps (ScenarioJson.Write s))
            Assert.True(s.RegionCount <= maxRegions, sprintf "shrunk case still has %d regions (bound %d)\n%s" s.RegionCount maxRegions (ScenarioJson.Write s))

            if entry.NeedsReference then
                Assert.Same(DifferentialCases.q35Machine.Value.Layout, s.Layout)
        | None -> failwith "the failure has no counterexample"

    /// The replay token printed for a failure regenerates the failing case as the first case, and it
    /// shrinks to the same counterexample.
    [<Theory>]
    [<InlineData("map-clients")>]
    [<InlineData("dirty-exactness")>]
    [<InlineData("map-length")>]
    member _.replay_token_reproduces_the_failure(name: string) =
        let entry = (Catalogue.find name).Value

        let broken =
            Conformance.Model.Targets.ModelTarget(entry.Broken Profile.Qemu72 |> List.head)

        let first = Runner.check entry Profile.Qemu72 broken 1000 None
        Assert.False first.Passed
        let again = Runner.check entry Profile.Qemu72 broken 1 first.Replay
        Assert.False(again.Passed, sprintf "replaying %O did not fail (the original failed after %d cases)" first.Replay.Value first.Tests)
        Assert.Equal(1, again.Tests)
        Assert.Equal(ScenarioJson.Write first.Counterexample.Value, ScenarioJson.Write again.Counterexample.Value)
