/// Bad input never gets an unhandled exception: scenario files mutated at random either parse or fail
/// with a ScenarioFormatException naming a JSON path, and whatever parses runs to a trace.
module Conformance.Properties.Tests.BadInputFuzzTests

open System
open System.IO
open FsCheck
open FsCheck.FSharp
open FsCheck.Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.Tests.TestSupport

let private seeds =
    lazy
        ([ "fixtures/scenarios"; "fixtures/findings" ]
         |> List.collect (fun d -> Directory.GetFiles(fromRoot d, "*.json") |> List.ofArray)
         |> List.map File.ReadAllText
         |> Array.ofList)

type Mutation =
    | DeleteSpan of int * int
    | Replace of int * string
    | Duplicate of int * int

let private genMutation =
    Gen.oneof
        [ Gen.map2 (fun a b -> DeleteSpan(a, b)) (Gen.choose (0, 100000)) (Gen.choose (1, 40))
          Gen.map2
              (fun a s -> Replace(a, s))
              (Gen.choose (0, 100000))
              (Gen.elements
                  [ "0"
                    "-1"
                    "\"x\""
                    "null"
                    "[]"
                    "{}"
                    "1e400"
                    "\"0xffffffffffffffffff\""
                    "true"
                    ","
                    "}"
                    "\"kind\": \"alias\""
                    "99999999999" ])
          Gen.map2 (fun a b -> Duplicate(a, b)) (Gen.choose (0, 100000)) (Gen.choose (1, 200)) ]

let private apply (text: string) (m: Mutation) =
    let at n =
        if text.Length = 0 then 0 else n % text.Length

    match m with
    | DeleteSpan(a, n) -> let i = at a in text.Remove(i, min n (text.Length - i))
    | Replace(a, s) -> let i = at a in text.Insert(i, s)
    | Duplicate(a, n) -> let i = at a in text.Insert(i, text.Substring(i, min n (text.Length - i)))

[<Property(MaxTest = 2000)>]
let ``mutated scenario files parse or fail with a JSON path; what parses runs`` (seed: PositiveInt) =
    Prop.forAll (Arb.fromGen (Gen.choose (0, 3) |> Gen.bind (fun n -> Gen.listOfLength n genMutation))) (fun mutations ->
        let text = mutations |> List.fold apply seeds.Value.[seed.Get % seeds.Value.Length]

        try
            let s = ScenarioJson.Parse text
            let trace = ScenarioTrace.Render(ScenarioRunner.Run s)
            trace.Contains "final:" |> Prop.classify true "parsed and ran"
        with
        | :? ScenarioFormatException as e -> e.Message.StartsWith "$" |> Prop.classify true "rejected with a path"
        | :? NotSupportedException as e -> e.Message.Contains "not modelled" |> Prop.classify true "not modelled")
