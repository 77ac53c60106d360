/// The regression corpus: shrunk counterexamples saved as scenario files naming their property, replayed
/// by the test suite on every run, so a fixed bug stays fixed even when the generators change.
module Conformance.Properties.Regression

open System
open System.IO
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.Catalogue

/// Overrides where new regression files are written.
let FolderVariable = "CONFORMANCE_REGRESSIONS_DIR"

/// Where new regression files go: CONFORMANCE_REGRESSIONS_DIR, else fixtures/regressions under the root
/// (Settings.root).
let folder () =
    match Environment.GetEnvironmentVariable FolderVariable with
    | null
    | "" -> Path.Combine(Settings.root (), "fixtures", "regressions")
    | dir -> dir

/// The scenario as it is stored: named after its property, described.
let asRegression (entry: Entry) (scenario: Scenario) =
    Scenario(
        scenario.Profile,
        scenario.Layout,
        scenario.Ops,
        Threads = scenario.Threads,
        LayoutFrom = scenario.LayoutFrom,
        Property = entry.Name,
        Description = sprintf "Shrunk counterexample of P%d %s (%s) on %A" entry.Number entry.Name entry.Title scenario.Profile
    )

/// <property>-<8 hex digits of a hash of the scenario>.json
let fileName (entry: Entry) (scenario: Scenario) =
    let text =
        ScenarioJson.Write(Scenario(scenario.Profile, scenario.Layout, scenario.Ops, Threads = scenario.Threads, LayoutFrom = scenario.LayoutFrom))

    sprintf "%s-%08x.json" entry.Name (MemoryTopology.StableHash text)

/// Writes the counterexample into the corpus folder `dir` (creating it); returns its path.
let saveTo (dir: string) (entry: Entry) (scenario: Scenario) =
    Directory.CreateDirectory dir |> ignore
    let path = Path.Combine(dir, fileName entry scenario)
    File.WriteAllText(path, ScenarioJson.Write(asRegression entry scenario))
    path

/// Writes the counterexample into the corpus (fixtures/regressions); returns its path.
let save (entry: Entry) (scenario: Scenario) = saveTo (folder ()) entry scenario

/// Judges a regression scenario with the property it names, on `target` (the reference model in the tests;
/// only the reference model's failures are kept here, so P26, which compares a target with the reference,
/// compares it with itself).
let judge (target: Conformance.Model.Targets.ITarget) (scenario: Scenario) =
    match scenario.Property with
    | null -> failwith "a regression scenario must name its property (\"property\": \"...\")"
    | name ->
        match find name with
        | Some entry -> entry, judgeScenario entry target target scenario
        | None -> failwithf "unknown property '%s' (see: conformance list)" name

/// A ready-to-paste F# xunit test that pins the case as a regression.
let fsharpTest (entry: Entry) (scenario: Scenario) =
    let json = ScenarioJson.Write(asRegression entry scenario).TrimEnd()

    String.concat
        "\n"
        [ "[<Fact>]"
          sprintf "let ``regression %s`` () =" (Path.GetFileNameWithoutExtension(fileName entry scenario))
          "    let scenario = Conformance.Model.Scenarios.ScenarioJson.Parse \"\"\""
          json
          "\"\"\""
          "    let _, result = Conformance.Properties.Regression.judge Conformance.Model.Targets.ModelTarget.Reference scenario"
          "    Xunit.Assert.Empty(Conformance.Properties.Verdict.violations result)" ]
