/// The scenario language: strict parsing with JSON paths in every error, and a canonical writer.
module Conformance.Properties.Tests.ScenarioFormatTests

open System.IO
open Xunit
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties
open Conformance.Properties.Tests.TestSupport

let private layout =
    """{ "regions": [ { "name": "system", "kind": "container", "size": "0x10000000000000000",
      "subregions": [ { "name": "ram", "kind": "ram", "size": "0x1000" } ] } ],
    "addressSpaces": [ { "name": "memory", "root": "system" } ] }"""

let private withOps (ops: string) =
    sprintf """{ "profile": "Qemu72", "layout": %s, "ops": [ %s ] }""" layout ops

type ScenarioFormatTests() =
    static member BadInputs: obj[] seq =
        [ "{ not json", "$ (line 1"
          """{ "layout": {}, "ops": [] }""", "$.layout"
          withOps "" |> fun s -> s.Replace("\"ops\"", "\"extra\": 1, \"ops\""), "$.extra"
          withOps ""
          |> fun s -> s.Replace("\"kind\": \"ram\"", "\"kind\": \"dram\""), "$.layout.regions[0].subregions[0].kind"
          withOps ""
          |> fun s -> s.Replace("\"size\": \"0x1000\"", "\"size\": 0"), "$.layout.regions[0].subregions[0].size"
          withOps ""
          |> fun s -> s.Replace("\"size\": \"0x1000\"", "\"size\": \"0x1ffffffffffffffffff\""), "$.layout.regions[0].subregions[0].size"
          withOps ""
          |> fun s -> s.Replace("\"root\": \"system\"", "\"root\": \"nowhere\""), "$.layout.addressSpaces[0].root"
          withOps "" |> fun s -> s.Replace("\"Qemu72\"", "\"Qemu80\""), "$.profile"
          withOps """{ "op": "map", "id": "m1", "as": "memory", "addr": 0 }""", "$.ops[0]"
          withOps """{ "op": "frobnicate" }""", "$.ops[0].op"
          withOps """{ "op": "map", "id": "m1", "as": "elsewhere", "addr": 0, "len": 4, "write": true }""", "$.ops[0].as"
          withOps
              """{ "op": "map", "id": "m1", "as": "memory", "addr": 0, "len": 4, "write": true }, { "op": "map", "id": "m1", "as": "memory", "addr": 0, "len": 4, "write": true }""",
          "$.ops[1].id"
          withOps """{ "op": "write", "as": "memory", "addr": 0, "data": "abc" }""", "$.ops[0].data"
          withOps """{ "op": "map", "id": "m1", "as": "memory", "addr": -1, "len": 4, "write": true }""", "$.ops[0].addr"
          withOps """{ "op": "map", "id": "m1", "as": "memory", "addr": 0, "len": 4, "write": "yes" }""", "$.ops[0].write"
          withOps """{ "op": "descriptors", "entries": [ { "index": 0, "addr": 0, "len": 1, "flags": 70000 } ] }""", "$.ops[0].entries[0].flags"
          withOps """{ "op": "virtioSetup", "as": "memory", "queueSize": 8, "desc": 0, "avail": 256, "used": 512, "diskSectors": 100000 }""",
          "$.ops[0].diskSectors"
          withOps """{ "op": "push", "element": "e", "len": 5000000000 }""", "$.ops[0].len" ]
        |> Seq.map (fun (json, path) -> [| box json; box path |])

    [<Theory>]
    [<MemberData(nameof ScenarioFormatTests.BadInputs)>]
    member _.bad_input_names_its_json_path(json: string, path: string) =
        let e =
            Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse json |> ignore)

        Assert.StartsWith(path, e.Message)

    [<Fact>]
    member _.alias_to_a_missing_region_is_a_layout_error_with_its_path() =
        let json =
            withOps ""
            |> fun s ->
                s.Replace("""{ "name": "ram", "kind": "ram", "size": "0x1000" }""", """{ "name": "a", "kind": "alias", "size": "0x1000", "target": "ghost" }""")

        let e =
            Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse json |> ignore)

        Assert.StartsWith("$.layout.regions[0].subregions[0].target", e.Message)

    /// Writing then reading a generated scenario gives it back: same canonical text.
    [<Fact>]
    member _.write_then_parse_round_trips_generated_scenarios() =
        for profile in [ Profile.Qemu72; Profile.Qemu92 ] do
            for s in Gen.sample 60 (Generators.genScenario profile) do
                let text = ScenarioJson.Write s
                let again = ScenarioJson.Write(ScenarioJson.Parse text)
                Assert.Equal(text, again)
                // and the re-read scenario runs to the same trace
                Assert.Equal(ScenarioTrace.Render(ScenarioRunner.Run s), ScenarioTrace.Render(ScenarioRunner.Run(ScenarioJson.Parse text)))

    static member Fixtures: obj[] seq =
        [ "fixtures/scenarios"; "fixtures/findings" ]
        |> Seq.collect (fun d -> Directory.GetFiles(fromRoot d, "*.json"))
        |> Seq.sort
        |> Seq.map (fun f -> [| box (Path.GetRelativePath(repoRoot.Value, f)) |])

    [<Theory>]
    [<MemberData(nameof ScenarioFormatTests.Fixtures)>]
    member _.fixture_scenarios_parse_and_run(path: string) =
        let s =
            Conformance.Properties.LayoutFiles.parseScenarioFile (fromRoot path) (File.ReadAllText(fromRoot path))

        let trace = ScenarioTrace.Render(ScenarioRunner.Run s)
        Assert.Contains("final:", trace)
        Assert.DoesNotContain("skipped", trace)

/// A scenario names its layout by file (QEMU's q35 dump here) instead of inlining thousands of lines; it
/// round-trips as such, and without anything to read the file it is an error naming the file.
[<Fact>]
let ``a scenario over QEMU's q35 layout names the dump and round-trips`` () =
    let path = fromRoot "fixtures/qemu/scenarios/two-reads-one-bounce-buffer.json"
    let text = File.ReadAllText path
    let s = Conformance.Properties.LayoutFiles.parseScenarioFile path text
    Assert.Equal(text.TrimEnd(), (ScenarioJson.Write s).TrimEnd())
    Assert.Contains("\"layout\": \"fixtures/layouts/qemu-7.2/q35.mtree-D.txt\"", text)
    Assert.Contains(s.Layout.AddressSpaces, fun a -> a.RootIndex.HasValue)

    // (LiveQemuTests replays it on QEMU)
    Assert.Equal<uint16>(
        [ 0us; 3us ],
        s.Ops
        |> Seq.pick (function
            | :? PublishOp as p -> Some p.Heads
            | _ -> None)
    )

    let e =
        Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse text |> ignore)

    Assert.Contains("q35.mtree-D.txt", e.Message)
    let missing = text.Replace("q35.mtree-D.txt", "no-such.mtree.txt")

    let e2 =
        Assert.Throws<ScenarioFormatException>(fun () -> Conformance.Properties.LayoutFiles.parseScenarioFile path missing |> ignore)

    Assert.StartsWith("$.layout:", e2.Message)

/// Imported layouts name address-space roots that repeat ("bus master container"): inlined, the scenario
/// format carries the root's index, and an index that names another region is an error with its path.
[<Fact>]
let ``a rootIndex that names another region is an error with its path`` () =
    let path = fromRoot "fixtures/qemu/scenarios/two-reads-one-bounce-buffer.json"

    let s =
        Conformance.Properties.LayoutFiles.parseScenarioFile path (File.ReadAllText path)

    let inline' = ScenarioJson.Write(Scenario(s.Profile, s.Layout, s.Ops))
    Assert.Contains("\"rootIndex\"", inline')
    Assert.Equal(inline'.TrimEnd(), (ScenarioJson.Write(ScenarioJson.Parse inline')).TrimEnd())

    let broken =
        System.Text.RegularExpressions.Regex.Replace(inline', "\"rootIndex\": \\d+", "\"rootIndex\": 0")

    let e =
        Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse broken |> ignore)

    Assert.Contains("rootIndex", e.Message)

/// System.Text.Json reads the structure (operations by "op", anywhere in the object; unknown fields refused
/// with the ones allowed; required ones demanded; nulls refused), and every refusal is one line with the path.
[<Theory>]
[<InlineData("""{ "addr": 1, "op": "map", "id": "m1", "as": "memory", "len": 4, "write": true }""", "")>]
[<InlineData("""{ "op": "kick", "extra": 1 }""", "$.ops[0].extra: unknown field (allowed here: op)")>]
[<InlineData("""{ "op": "map", "id": "m1", "as": "memory", "addr": 0, "len": 4, "write": "yes" }""", "$.ops[0].write: expected true or false, found \"yes\"")>]
[<InlineData("""{ "op": "map", "id": null, "as": "memory", "addr": 1, "len": 4, "write": true }""", "$.ops[0].id: expected a value, found null")>]
[<InlineData("""{ "id": "m1" }""", "$.ops[0]: missing field 'op'")>]
[<InlineData("""{ "op": "publish", "heads": 3 }""", "$.ops[0].heads: expected an array, found 3")>]
[<InlineData("""3""", "$.ops[0]: expected an object, found 3")>]
[<InlineData("""null""", "$.ops[0]: expected a value, found null")>]
[<InlineData("""{ "op": "unmap", "id": "m", "accessLen": null }""", "$.ops[0].accessLen: expected a value, found null")>]
[<InlineData("""{ "op": "descriptors", "table": null, "entries": [] }""", "$.ops[0].table: expected a value, found null")>]
[<InlineData("""{ "op": "descriptors", "entries": [ null ] }""", "$.ops[0].entries[0]: expected a value, found null")>]
let ``the structure is read by System.Text.Json, refusals name the path`` (op: string, expected: string) =
    let text = withOps op

    if expected = "" then
        Assert.Equal(1, (ScenarioJson.Parse text).Ops.Count)
    else
        let e =
            Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse text |> ignore)

        Assert.StartsWith(expected, e.Message)

[<Fact>]
let ``nulls in the layout are refused with their path`` () =
    let text =
        (withOps "").Replace("\"addressSpaces\": [", "\"addressSpaces\": [ null, ")

    let e =
        Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse text |> ignore)

    Assert.StartsWith("$.layout.addressSpaces[0]: expected a value, found null", e.Message)

[<Fact>]
let ``a file that is not an object is refused, not crashed on`` () =
    let e =
        Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse "[]" |> ignore)

    Assert.StartsWith("$: expected an object", e.Message)
