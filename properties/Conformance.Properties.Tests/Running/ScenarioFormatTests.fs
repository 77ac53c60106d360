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

/// Threads and the operations that exist for them: every refusal is its path and what is wrong there.
let private threadInputs: (string * string) list =
    /// An operation's JSON with its usual fields, one of them (`field`) given `value` instead.
    let operation (op: string) (usual: (string * string) list) (field: string) (value: string) =
        usual
        |> List.map (fun (k, v) -> sprintf "\"%s\": %s" k (if k = field then value else v))
        |> String.concat ", "
        |> sprintf "{ \"op\": \"%s\", %s }" op

    let mapOrWait =
        operation
            "mapOrWait"
            [ "id", "\"w\""
              "as", "\"memory\""
              "addr", "0"
              "len", "4"
              "write", "true"
              "client", "\"dev1\"" ]

    let serveQueue =
        operation
            "serveQueue"
            [ "as", "\"memory\""
              "queueSize", "16"
              "desc", "0"
              "avail", "256"
              "used", "512"
              "entries", "[ { \"index\": 0, \"addr\": 1024, \"len\": 8 } ]"
              "heads", "[ 0 ]" ]

    let threads (ops: string) (threadOps: string) =
        (withOps ops).TrimEnd('}', ' ')
        + sprintf ", \"threads\": [ [ %s ] ] }" threadOps

    let huge = "\"0x10000000000000000\""

    let entry (field: string) (value: string) =
        serveQueue "entries" (sprintf "[ { \"index\": 0, \"addr\": 1024, \"len\": 8, \"%s\": %s } ]" field value)

    [ (withOps "").TrimEnd('}', ' ') + ", \"threads\": [] }", "$.threads: expected at least one thread (leave 'threads' out for a sequential scenario)"
      withOps (mapOrWait "id" "\"w\""), "$.ops[0].op: runs only on a thread of a concurrency case ($.threads)"
      withOps (serveQueue "as" "\"memory\""), "$.ops[0].op: runs only on a thread of a concurrency case ($.threads)"
      threads """{ "op": "map", "id": "w", "as": "memory", "addr": 0, "len": 4, "write": true }""" (mapOrWait "id" "\"w\""),
      "$.threads[0][0].id: mapping id 'w' is used by an earlier map"
      threads "" (mapOrWait "as" "\"elsewhere\""), "$.threads[0][0].as: no address space 'elsewhere' in the layout"
      threads "" (serveQueue "as" "\"elsewhere\""), "$.threads[0][0].as: no address space 'elsewhere' in the layout"
      threads "" (mapOrWait "addr" huge), "$.threads[0][0].addr: 18446744073709551616 is larger than"
      threads "" (mapOrWait "len" huge), "$.threads[0][0].len: 18446744073709551616 is larger than"
      threads "" (serveQueue "queueSize" "12"), "$.threads[0][0].queueSize: a split queue size is a power of two from 1 to 1024"
      threads "" (serveQueue "queueSize" "0"), "$.threads[0][0].queueSize: a split queue size is a power of two from 1 to 1024"
      threads "" (serveQueue "queueSize" "2048"), "$.threads[0][0].queueSize: 2048 is larger than 1024"
      withOps (sprintf """{ "op": "descriptors", "table": %s, "entries": [] }""" huge), "$.ops[0].table: 18446744073709551616 is larger than"
      // virtioSetup reads its rings as serveQueue does
      withOps (sprintf """{ "op": "virtioSetup", "as": "memory", "queueSize": 8, "desc": %s, "avail": 256, "used": 512 }""" huge),
      "$.ops[0].desc: 18446744073709551616 is larger than"
      withOps (sprintf """{ "op": "virtioSetup", "as": "memory", "queueSize": 8, "desc": 0, "avail": %s, "used": 512 }""" huge),
      "$.ops[0].avail: 18446744073709551616 is larger than"
      withOps (sprintf """{ "op": "virtioSetup", "as": "memory", "queueSize": 8, "desc": 0, "avail": 256, "used": %s }""" huge),
      "$.ops[0].used: 18446744073709551616 is larger than"
      withOps """{ "op": "virtioSetup", "as": "memory", "queueSize": 6, "desc": 0, "avail": 256, "used": 512 }""",
      "$.ops[0].queueSize: a split queue size is a power of two from 1 to 1024"
      threads "" (serveQueue "desc" huge), "$.threads[0][0].desc: 18446744073709551616 is larger than"
      threads "" (serveQueue "avail" huge), "$.threads[0][0].avail: 18446744073709551616 is larger than"
      threads "" (serveQueue "used" huge), "$.threads[0][0].used: 18446744073709551616 is larger than"
      threads "" (serveQueue "heads" "[ 0, 70000 ]"), "$.threads[0][0].heads[1]: 70000 is larger than 65535"
      threads "" (entry "index" "70000"), "$.threads[0][0].entries[0].index: 70000 is larger than 65535"
      threads "" (entry "addr" huge), "$.threads[0][0].entries[0].addr: 18446744073709551616 is larger than"
      threads "" (entry "len" "5000000000"), "$.threads[0][0].entries[0].len: 5000000000 is larger than"
      threads "" (entry "flags" "70000"), "$.threads[0][0].entries[0].flags: 70000 is larger than 65535"
      threads "" (entry "next" "70000"), "$.threads[0][0].entries[0].next: 70000 is larger than 65535"
      withOps """{ "op": "map", "id": "a", "as": "memory", "addr": 0, "len": 4, "write": true }, { "op": "unmap", "id": "a", "percent": 5, "accessLen": 1 }""",
      "$.ops[1]: give at most one of 'accessLen' and 'percent'"
      withOps """{ "op": "map", "id": "a", "as": "memory", "addr": 0, "len": 4, "write": true }, { "op": "unmap", "id": "a", "percent": 101 }""",
      "$.ops[1].percent: 101 is larger than 100" ]

[<Fact>]
let ``threads and their operations are refused with the path and the reason`` () =
    for json, expected in threadInputs do
        let e =
            Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse json |> ignore)

        Assert.StartsWith(expected, e.Message)

[<Fact>]
let ``the thread operations are written, read back and described`` () =
    let entries =
        [| DescriptorEntry(0, 0x1000UL, 8u, 1us, 1us)
           DescriptorEntry(1, 0x2000UL, 4u, 2us, 0us) |]

    let scenario =
        Scenario(
            Profile.Qemu92,
            ParallelCommands.layout,
            [| MapOp("m0", "memory", 0x10UL, 4UL, true) :> ScenarioOp
               UnmapOp("m0", System.Nullable()) |],
            Threads =
                [| [| MapOrWaitOp("t1m0", "dev", 0x102000UL, 64UL, false, "dev1") :> ScenarioOp
                      UnmapOp("t1m0", System.Nullable(), AccessPercent = System.Nullable 25) |]
                   [| ServeQueueOp("memory", 16, 0x4000UL, 0x4200UL, 0x4400UL, entries, [| 0us; 1us |]) |] |]
        )

    let text = ScenarioJson.Write scenario
    // a file ends with a newline; one operation is one line
    Assert.EndsWith("}\n", text)
    Assert.DoesNotContain("\n", ScenarioJson.Write(scenario.Threads.[1].[0]))
    Assert.StartsWith("{\"op\":\"serveQueue\",\"as\":\"memory\",\"queueSize\":16,", ScenarioJson.Write(scenario.Threads.[1].[0]))
    // canonical: a whole-mapping unmap says so
    Assert.Contains("\"accessLen\": \"all\"", text)
    Assert.Contains("\"percent\": 25", text)
    let back = ScenarioJson.Parse text
    Assert.Equal(text, ScenarioJson.Write back)
    Assert.Equal(scenario.Threads.[0].[0], back.Threads.[0].[0])
    Assert.Equal(scenario.Threads.[0].[1], back.Threads.[0].[1])

    Assert.Equal("map t1m0 dev 0x102000 len 64 read, waiting as map client dev1 while it fails", ScenarioTrace.Describe back.Threads.[0].[0])

    Assert.Equal("unmap t1m0 access_len 25% of the mapped length", ScenarioTrace.Describe back.Threads.[0].[1])

    Assert.Equal(
        "serve a queue of 16 on memory at desc 0x4000 avail 0x4200 used 0x4400: heads 0, 1 of [0] 0x1000+8 NEXT next 1, [1] 0x2000+4 WRITE",
        ScenarioTrace.Describe back.Threads.[1].[0]
    )

    Assert.Equal(
        "map t1m0 dev 0x102000 len 64 write, waiting as map client dev1 while it fails",
        ScenarioTrace.Describe(MapOrWaitOp("t1m0", "dev", 0x102000UL, 64UL, true, "dev1"))
    )

[<Fact>]
let ``a sequential run refuses threads and skips thread operations`` () =
    let threaded =
        Scenario(Profile.Qemu72, ParallelCommands.layout, [||], Threads = [| [| RunBottomHalvesOp() :> ScenarioOp |] |])

    let e =
        Assert.Throws<System.ArgumentException>(fun () -> ScenarioRunner.Run threaded |> ignore)

    Assert.StartsWith("a scenario with threads is a concurrency case: the concurrency properties (P20-P24) run it", e.Message)

    // built by hand (a file cannot put them there): recorded as skipped with the reason
    let run =
        ScenarioRunner.Run(
            Scenario(
                Profile.Qemu72,
                ParallelCommands.layout,
                [| MapOrWaitOp("w", "memory", 0UL, 4UL, true, "dev1") :> ScenarioOp
                   ServeQueueOp("memory", 16, 0UL, 0x200UL, 0x400UL, [||], [||]) |]
            )
        )

    for step in run.Steps do
        Assert.Equal("runs only on a thread of a concurrency case", step.Skipped)
