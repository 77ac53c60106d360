/// Replays every scenario of the regression corpus (fixtures/regressions) against the property it names.
/// A new file lands there whenever a property fails on the reference model; to add one by hand, write a
/// scenario file with a "property" field (docs/failures.md).
module Conformance.Properties.Tests.RegressionTests

open System.IO
open Xunit
open Conformance.Model.Scenarios
open Conformance.Properties
open Conformance.Properties.Tests.TestSupport

type RegressionTests() =
    static member Files: obj[] seq =
        let dir = fromRoot "fixtures/regressions"

        (if Directory.Exists dir then
             Directory.GetFiles(dir, "*.json")
         else
             [||])
        |> Array.sort
        |> Seq.map (fun f -> [| box (Path.GetFileName f) |])

    [<Fact>]
    member _.the_corpus_is_not_empty() = Assert.NotEmpty(RegressionTests.Files)

    [<Theory>]
    [<MemberData(nameof RegressionTests.Files)>]
    member _.regression_still_holds(file: string) =
        let path = fromRoot ("fixtures/regressions/" + file)

        let scenario =
            Conformance.Properties.LayoutFiles.parseScenarioFile path (File.ReadAllText path)

        // a concurrency counterexample (a scenario with threads) is judged by its property like any other
        let entry, result =
            Regression.judge Conformance.Model.Targets.ModelTarget.Reference scenario

        Assert.True(
            List.isEmpty (Verdict.violations result),
            sprintf
                "%s fails %s again:\n%s\n%s"
                file
                entry.Name
                (String.concat "\n" (Verdict.violations result))
                (if scenario.IsConcurrent then
                     ScenarioJson.Write scenario
                 else
                     ScenarioTrace.Render(ScenarioRunner.Run scenario))
        )

    /// A counterexample written to the corpus reads back as the same scenario, naming its property.
    [<Fact>]
    member _.saved_counterexamples_round_trip() =
        withTempFolder "regressions"
        <| fun dir ->
            let entry = (Catalogue.find "map-length").Value

            let scenario =
                ScenarioJson.Parse(File.ReadAllText(fromRoot "fixtures/findings/F-DMA-2.json"))

            let path = Regression.saveTo dir entry scenario
            let back = ScenarioJson.Parse(File.ReadAllText path)
            Assert.Equal("map-length", back.Property)
            Assert.StartsWith("map-length-", Path.GetFileName path)
            Assert.Equal(ScenarioJson.Write(Regression.asRegression entry scenario), ScenarioJson.Write back)
            Assert.Contains("Regression.judge", Regression.fsharpTest entry scenario)

    /// A concurrency counterexample is saved as a scenario with threads, reads back as the same case and is
    /// judged by the property it names.
    [<Fact>]
    member _.saved_concurrency_counterexamples_round_trip() =
        withTempFolder "regressions"
        <| fun dir ->
            let entry = (Catalogue.find "no-lost-wakeup").Value

            let case =
                ConcurrentScenarios.Wakeup
                    { Profile = Conformance.Model.Profile.Qemu72
                      Devices =
                        [ [ { Space = 0
                              Offset = 0
                              Length = 4096
                              Write = true } ]
                          [ { Space = 1
                              Offset = 16
                              Length = 100
                              Write = false } ] ] }

            let path = Regression.saveTo dir entry (ConcurrentScenarios.toScenario case)
            let back = ScenarioJson.Parse(File.ReadAllText path)
            Assert.Equal("no-lost-wakeup", back.Property)
            Assert.Equal(2, back.Threads.Count)
            Assert.Equal(case, ConcurrentScenarios.ofScenario back)

            let judgedBy, result =
                Regression.judge Conformance.Model.Targets.ModelTarget.Reference back

            Assert.Equal("no-lost-wakeup", judgedBy.Name)
            Assert.Empty(Verdict.violations result)
            Assert.Contains("2 devices", result.Labels |> String.concat "; ")
