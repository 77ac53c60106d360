/// Every registered finding is still shown by the model on its minimal scenario, through the property it
/// breaks; so the registry cannot hide a change of behaviour.
module Conformance.Properties.Tests.FindingTests

open System.IO
open Xunit
open Conformance.Model.Scenarios
open Conformance.Properties
open Conformance.Properties.Tests.TestSupport

type FindingTests() =
    /// The findings shown by a scenario file (F-DMA-6, a concurrency finding, has its own test).
    static member Ids: obj[] seq =
        Findings.all
        |> Seq.filter (fun f -> f.Scenario <> "")
        |> Seq.map (fun f -> [| box f.Id |])

    [<Theory>]
    [<MemberData(nameof FindingTests.Ids)>]
    member _.finding_is_still_reproduced(id: string) =
        let finding = Findings.byId id
        let scenario = ScenarioJson.Parse(File.ReadAllText(fromRoot finding.Scenario))
        let entry = (Catalogue.find finding.Property).Value

        let result =
            Catalogue.judgeScenario entry Conformance.Model.Targets.ModelTarget.Reference Conformance.Model.Targets.ModelTarget.Reference scenario

        Assert.Empty(Verdict.violations result)
        Assert.Contains(id, Verdict.findings result)
        Assert.NotEmpty(finding.Evidence)
