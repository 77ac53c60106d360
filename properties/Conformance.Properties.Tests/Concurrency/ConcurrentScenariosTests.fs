/// Concurrency cases are scenarios with threads: every workload's case survives a trip through the scenario
/// format, and a scenario that is not exactly a case is refused with its JSON path.
module Conformance.Properties.Tests.ConcurrentScenariosTests

open System.Text.Json.Nodes
open FsCheck
open FsCheck.FSharp
open global.Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties
open Conformance.Properties.ConcurrentScenarios

let private roundTrips (gen: Gen<ConcurrentCase>) =
    for c in Gen.sample 50 gen do
        let text = ScenarioJson.Write(toScenario c)
        let back = ScenarioJson.Parse text
        Assert.True(back.IsConcurrent)
        Assert.Equal(c, ofScenario back)
        Assert.Equal(text, ScenarioJson.Write back)

[<Fact>]
let ``generated cases of every workload read back as written`` () =
    for profile in [ Profile.Qemu72; Profile.Qemu92 ] do
        roundTrips ((ParallelCases.arbCase profile).Generator |> Gen.map Commands)
        roundTrips ((WakeupWorkload.arbCase profile).Generator |> Gen.map Wakeup)
        roundTrips ((ParallelVirtqueues.arbCase profile).Generator |> Gen.map Queues)

/// A failure is saved as its shrunk case: every case shrinking can reach must be a file that reads back too
/// (a shrink step that left an actor's slice would be saved and then refused by replay).
[<Fact>]
let ``every shrink of a generated case reads back as written`` () =
    let shrinksOf (arb: Arbitrary<'c>) (wrap: 'c -> ConcurrentCase) =
        Gen.sample 20 arb.Generator
        |> Seq.collect (fun c -> arb.Shrinker c |> Seq.truncate 40)
        |> Seq.map wrap
        |> Array.ofSeq

    let shrunk =
        [| yield! shrinksOf (ParallelCases.arbCase Profile.Qemu92) Commands
           yield! shrinksOf (WakeupWorkload.arbCase Profile.Qemu72) Wakeup
           yield! shrinksOf (ParallelVirtqueues.arbCase Profile.Qemu92) Queues |]

    Assert.True(shrunk.Length > 300, sprintf "only %d shrinks drawn" shrunk.Length)

    for c in shrunk do
        Assert.Equal(c, ofScenario (ScenarioJson.Parse(ScenarioJson.Write(toScenario c))))

let private commandsCase =
    Commands
        { Profile = Profile.Qemu92
          Prefix = [ ParallelCommands.Map(0, ParallelCommands.Mmio, 0, 64, true) ]
          Threads =
            [ [ ParallelCommands.Map(1, ParallelCommands.Mmio, 8, 2048, true)
                ParallelCommands.WriteThrough(0, 7uy)
                ParallelCommands.Unmap(0, 50) ]
              [ ParallelCommands.Register 0; ParallelCommands.Unregister 0 ] ] }

[<Fact>]
let ``a case is written in the scenario language`` () =
    let s = toScenario commandsCase
    Assert.Equal<ScenarioOp seq>([ MapOp("m0", "memory", 0x100000UL, 64UL, true) :> ScenarioOp ], s.Ops)
    Assert.Equal(2, s.Threads.Count)
    // thread 1 is actor 1: its own slice, its own mapping names, a share of the granted length
    Assert.Equal(MapOp("t1m0", "dev", 0x100000UL + 8192UL + 8UL, 2048UL, true) :> ScenarioOp, s.Threads.[0].[0])
    Assert.Equal(UnmapOp("t1m0", System.Nullable(), AccessPercent = System.Nullable 50) :> ScenarioOp, s.Threads.[0].[2])
    Assert.Equal(RegisterClientOp("memory", "dev2") :> ScenarioOp, s.Threads.[1].[0])

/// The scenario text of `case`, changed by `edit`, read back: the refusal's message.
let private refusal (case: ConcurrentCase) (edit: JsonObject -> unit) =
    let node = JsonNode.Parse(ScenarioJson.Write(toScenario case)).AsObject()
    edit node

    let e =
        Assert.Throws<ScenarioFormatException>(fun () -> ofScenario (ScenarioJson.Parse(node.ToJsonString())) |> ignore)

    e.Message

let private op (node: JsonObject) (thread: int) (index: int) =
    node.["threads"].[thread].[index].AsObject()

[<Fact>]
let ``a scenario that is not exactly a case is refused with its path`` () =
    let starts (prefix: string) (message: string) =
        Assert.True(message.StartsWith prefix, sprintf "expected a message at %s, got: %s" prefix message)

    // another actor's slice
    refusal commandsCase (fun n -> (op n 0 0).["addr"] <- "0x100000")
    |> starts "$.threads[0][0].addr"
    // a mapping named after another thread
    refusal commandsCase (fun n -> (op n 0 1).["id"] <- "t2m0")
    |> starts "$.threads[0][1].id"
    // a map client that is not the thread's own
    refusal commandsCase (fun n -> (op n 1 0).["client"] <- "dev1")
    |> starts "$.threads[1][0]"
    // an operation the workload does not run
    refusal commandsCase (fun n -> n.["threads"].[1].AsArray().Add(JsonNode.Parse """{"op": "runBottomHalves"}"""))
    |> starts "$.threads[1][2].op"
    // another machine
    refusal commandsCase (fun n -> n.["layout"].["regions"].[0].["size"] <- "0x200000000")
    |> starts "$.layout"
    // P22's device fills with its own number
    let wakeup =
        Wakeup
            { Profile = Profile.Qemu72
              Devices =
                [ [ { Space = 0
                      Offset = 0
                      Length = 64
                      Write = true } ]
                  [ { Space = 0
                      Offset = 0
                      Length = 8
                      Write = false } ] ] }

    refusal wakeup (fun n -> (op n 0 1).["fillByte"] <- 9)
    |> starts "$.threads[0][1]"
    // P22's devices do DMA to MMIO
    refusal wakeup (fun n -> (op n 1 0).["addr"] <- "0x4000")
    |> starts "$.threads[1][0].addr"
    // P24's descriptors must chain as the workload lays them out
    let queues =
        Queues
            { Profile = Profile.Qemu92
              Devices =
                [ [ [ { Target = ParallelCommands.Mmio
                        Offset = 0
                        Length = 64
                        DeviceWrites = false } ] ]
                  [ [ { Target = ParallelCommands.Ram
                        Offset = 0
                        Length = 64
                        DeviceWrites = true } ] ] ] }

    refusal queues (fun n -> (op n 0 0).["heads"].AsArray().[0] <- 5)
    |> starts "$.threads[0][0].entries"

    refusal queues (fun n -> (op n 1 0).["entries"].[0].["addr"] <- "0x4000")
    |> starts "$.threads[1][0].entries[0].addr: descriptor 0 points into the device's rings"

    refusal queues (fun n -> (op n 1 0).["used"] <- "0x5000")
    |> starts "$.threads[1][0]"

[<Fact>]
let ``the scenario format keeps thread-only operations on threads`` () =
    let text =
        ScenarioJson
            .Write(toScenario commandsCase)
            .Replace(
                "\"ops\": [",
                "\"ops\": [ {\"op\": \"mapOrWait\", \"id\": \"w\", \"as\": \"memory\", \"addr\": 0, \"len\": 1, \"write\": false, \"client\": \"c\"},"
            )

    let e =
        Assert.Throws<ScenarioFormatException>(fun () -> ScenarioJson.Parse text |> ignore)

    Assert.StartsWith("$.ops[0].op", e.Message)
    // and a sequential run refuses a scenario with threads
    Assert.Throws<System.ArgumentException>(fun () -> ScenarioRunner.Run(toScenario commandsCase) |> ignore)
    |> ignore

[<Fact>]
let ``unmap by percent and its refusals`` () =
    let parse (unmap: string) =
        ScenarioJson.Parse(
            sprintf
                """{"layout": {"regions": [{"name": "ram", "kind": "ram", "size": 4096, "addr": 0}], "addressSpaces": [{"name": "memory", "root": "ram"}]},
                    "ops": [{"op": "map", "id": "a", "as": "memory", "addr": 0, "len": 100, "write": true}, %s]}"""
                unmap
        )

    Assert.Equal(
        Some 50,
        parse """{"op": "unmap", "id": "a", "percent": 50}"""
        |> fun s -> Option.ofNullable (s.Ops.[1] :?> UnmapOp).AccessPercent
    )
    // a bounce buffer writes back access_len bytes: half of the 100 mapped
    let onMmio =
        Scenario(
            Profile.Qemu72,
            ParallelCommands.layout,
            [| MapOp("a", "memory", ParallelCommands.MmioBase, 100UL, true)
               UnmapOp("a", System.Nullable(), AccessPercent = System.Nullable 50) |]
        )

    Assert.Equal(50UL, (ScenarioRunner.Run onMmio).Steps.[1].Unmap.Value.BytesWrittenBack)

    for bad, path in
        [ """{"op": "unmap", "id": "a", "percent": 101}""", "$.ops[1].percent"
          """{"op": "unmap", "id": "a", "percent": 5, "accessLen": 5}""", "$.ops[1]" ] do
        let e = Assert.Throws<ScenarioFormatException>(fun () -> parse bad |> ignore)
        Assert.StartsWith(path, e.Message)

[<Fact>]
let ``a sequential scenario is not a concurrency case`` () =
    let s =
        ScenarioJson.Parse(System.IO.File.ReadAllText(TestSupport.fromRoot "fixtures/findings/F-DMA-1.json"))

    Assert.False s.IsConcurrent
    let e = Assert.Throws<ScenarioFormatException>(fun () -> ofScenario s |> ignore)
    Assert.StartsWith("$", e.Message)
