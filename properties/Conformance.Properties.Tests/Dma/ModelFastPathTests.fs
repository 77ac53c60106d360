/// The model target's whole-scenario paths (RunAndRelease without a session, live ids kept incrementally) are
/// shortcuts of the generic session path (TargetRuns over ITargetSession): for generated DMA scenarios both
/// must give the same operations, the same trace and nothing left live after a release. The properties
/// judge the shortcut's observations, so a shortcut that drops an unmap or misorders the live ids would
/// otherwise go unseen (mutation testing found exactly such survivors).
module Conformance.Properties.Tests.ModelFastPathTests

open FsCheck
open FsCheck.FSharp
open global.Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets
open Conformance.Properties

/// The model behind a plain ITarget: TargetRuns then takes its generic path (a session, every operation, the
/// still-live mappings unmapped, bottom halves run) instead of the model's shortcut.
type private Plain(inner: ITarget) =
    interface ITarget with
        member _.Name = inner.Name
        member _.Capabilities = inner.Capabilities
        member _.CommandLine = inner.CommandLine
        member _.IsReference = inner.IsReference
        member _.Machine = inner.Machine
        member _.Open(profile, layout) = inner.Open(profile, layout)

[<Fact>]
let ``RunAndRelease on the model is the session path: same operations, same trace, nothing left live`` () =
    let target = ModelTarget.Reference :> ITarget
    let mutable withLive = 0

    for profile in [ Profile.Qemu72; Profile.Qemu92 ] do
        for s in Gen.sampleWithSeed (Rnd(20261130UL, 0x9e3779b97f4a7c15UL)) 25 150 (Generators.genScenario profile) do
            let fast = target.RunAndRelease s
            let slow = (Plain target :> ITarget).RunAndRelease s

            if slow.Scenario.Ops.Count > s.Ops.Count + 1 then
                withLive <- withLive + 1

            Assert.Equal<string list>(
                slow.Scenario.Ops |> Seq.map ScenarioTrace.Describe |> List.ofSeq,
                fast.Scenario.Ops |> Seq.map ScenarioTrace.Describe |> List.ofSeq
            )

            Assert.Equal(ScenarioTrace.Render slow, ScenarioTrace.Render fast)
            Assert.Empty(fast.Memory.LiveIds)
            Assert.Empty(fast.Memory.LiveMappings)

    // the cases must leave mappings live for the release to matter
    Assert.True(withLive > 30, sprintf "only %d of 300 scenarios left a mapping live" withLive)

[<Fact>]
let ``live ids after every step are the scenario's live mappings in ordinal order`` () =
    let target = ModelTarget.Reference :> ITarget

    for s in Gen.sampleWithSeed (Rnd(20261201UL, 0x9e3779b97f4a7c15UL)) 25 150 (Generators.genScenario Profile.Qemu92) do
        use session = target.Open(s.Profile, s.Layout)

        for op in s.Ops do
            session.Apply op |> ignore
            let o = session.Observe()

            let expected =
                o.Mappings
                |> Seq.filter (fun kv -> o.Memory.LiveMappings |> Seq.exists (fun m -> m.Id = kv.Key))
                |> Seq.map (fun kv -> kv.Key)
                |> Seq.sortWith (fun a b -> System.String.CompareOrdinal(a, b))
                |> List.ofSeq

            Assert.Equal<string list>(expected, List.ofSeq o.Memory.LiveIds)
