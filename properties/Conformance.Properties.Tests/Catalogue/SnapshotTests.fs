/// Snapshot tests (Snapshooter) of what users read: the canonical trace and the explanation of every
/// teaching scenario, the flat views rendered from the QEMU layout dumps, and the property catalogue.
/// Approved snapshots live under snapshots/; a mismatch fails with a unified diff and leaves the new
/// version pending (`conformance approve` shows and accepts it). CI runs with SNAPSHOOTER_STRICT_MODE=true,
/// so a missing snapshot fails there instead of being written.
module Conformance.Properties.Tests.SnapshotTests

open System
open System.IO
open Xunit
open Snapshooter
open Snapshooter.Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties
open Conformance.Properties.Tests.TestSupport

/// Matches `text` (stored one JSON string per line, so diffs are line diffs) against the approved
/// snapshot snapshots/<group>/__snapshots__/<name>.snap.
let matchSnapshot (group: string) (name: string) (text: string) =
    let folder = fromRoot (Path.Combine("snapshots", group))
    let lines = text.Replace("\r\n", "\n").TrimEnd('\n').Split('\n')

    try
        Snapshot.Match(lines, SnapshotFullName(name + ".snap", folder))
    with e ->
        let pending =
            SnapshotStore.pending repoRoot.Value
            |> List.tryFind (fun p -> p.Name = Path.Combine(group, "__snapshots__", name + ".snap"))

        let diff =
            pending
            |> Option.map SnapshotStore.diff
            |> Option.defaultValue "(no pending version was written)"

        failwithf
            "snapshot %s/%s does not match (%s)\n%s\nIf the change is intended: dotnet run --project src/Conformance.Cli -- approve"
            group
            name
            (e.GetType().Name)
            diff

let private files (dir: string) =
    Directory.GetFiles(fromRoot dir, "*.json")
    |> Array.sort
    |> Seq.map (fun f -> [| box (Path.GetFileNameWithoutExtension f) |])

type SnapshotTests() =
    static member Scenarios: obj[] seq = files "fixtures/scenarios"
    static member Machines: obj[] seq = [ "q35"; "pc" ] |> Seq.map (fun m -> [| box m |])

    [<Theory>]
    [<MemberData(nameof SnapshotTests.Scenarios)>]
    member _.scenario_trace(name: string) =
        let s =
            ScenarioJson.Parse(File.ReadAllText(fromRoot ("fixtures/scenarios/" + name + ".json")))

        matchSnapshot "scenarios" (name + ".trace") (ScenarioTrace.Render(ScenarioRunner.Run s))

    [<Theory>]
    [<MemberData(nameof SnapshotTests.Scenarios)>]
    member _.scenario_explanation(name: string) =
        let s =
            ScenarioJson.Parse(File.ReadAllText(fromRoot ("fixtures/scenarios/" + name + ".json")))

        matchSnapshot "scenarios" (name + ".explain") (ScenarioExplanation.Render(ScenarioRunner.Run s))

    [<Theory>]
    [<MemberData(nameof SnapshotTests.Machines)>]
    member _.layout_flat_view(machine: string) =
        let imported = LayoutFixtureTests.import "qemu-7.2" machine "mtree-D"
        matchSnapshot "layouts" (machine + ".flat") (LayoutFixtureTests.render imported)

    [<Fact>]
    member _.property_catalogue() =
        let text =
            [ for e in Catalogue.all do
                  yield sprintf "P%d %s: %s" e.Number e.Name e.Title

                  for r in e.Rules do
                      yield "    rule: " + r

                  let variants =
                      [ Profile.Qemu72; Profile.Qemu92 ]
                      |> List.collect e.Broken
                      |> List.map string
                      |> List.distinct

                  yield sprintf "    rejects: %s" (String.concat ", " variants)
              for f in Findings.all do
                  yield sprintf "%s [%s] %s" f.Id f.Property f.Title ]
            |> String.concat "\n"

        matchSnapshot "catalogue" "properties" text

/// docs/conformance-matrix.md is the conformance matrix as generated (regenerate: conformance matrix).
[<Fact>]
let ``docs/conformance-matrix.md is what the generator prints`` () =
    let committed =
        File.ReadAllText(fromRoot "docs/conformance-matrix.md").Replace("\r\n", "\n")

    let matrix = ConformanceMatrix.render ()
    matchSnapshot "catalogue" "conformance-matrix" matrix

    Assert.True(
        (committed = matrix),
        "docs/conformance-matrix.md is not the current matrix; regenerate it: dotnet run --project src/Conformance.Cli -- matrix > docs/conformance-matrix.md"
    )

[<Fact>]
let ``a unified diff shows changed lines with context`` () =
    let d =
        TextDiff.unified "a" "b" "1\n2\n3\n4\n5\n6\n7\n8" "1\n2\n3\nfour\n5\n6\n7\n8" 1

    Assert.Equal("--- a\n+++ b\n@@ -3,3 +3,3 @@\n 3\n-4\n+four\n 5\n", d)
    Assert.Equal("", TextDiff.unified "a" "b" "same" "same" 3)
