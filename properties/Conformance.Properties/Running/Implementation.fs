/// The implementation a property judges: the reference model, a deliberately broken variant of it, or
/// (later) another target that can run scenarios.
module Conformance.Properties.Implementation

open Conformance.Model
open Conformance.Model.Scenarios

type Implementation =
    {
        Name: string
        /// The deliberate bugs switched on (none for the reference model).
        Fault: Fault
        VirtioFault: Conformance.Model.Virtio.VirtioFault
        /// Runs a scenario on a fresh instance.
        Run: Scenario -> ScenarioRun
        /// A fresh instance to drive directly.
        NewSystem: LayoutSpec -> Profile -> MemorySystem
    }

let ofFaults (fault: Fault) (virtioFault: Conformance.Model.Virtio.VirtioFault) =
    { Name =
        (match fault, virtioFault with
         | Fault.None, Conformance.Model.Virtio.VirtioFault.None -> "reference model"
         | f, Conformance.Model.Virtio.VirtioFault.None -> sprintf "broken variant %A" f
         | _, v -> sprintf "broken variant %A" v)
      Fault = fault
      VirtioFault = virtioFault
      Run = fun s -> ScenarioRunner.Run(s, fault, virtioFault)
      NewSystem = fun layout profile -> MemorySystem(layout, profile, fault) }

let ofFault (fault: Fault) =
    ofFaults fault Conformance.Model.Virtio.VirtioFault.None

let ofVirtioFault (fault: Conformance.Model.Virtio.VirtioFault) = ofFaults Fault.None fault

let reference = ofFault Fault.None

let isReference (impl: Implementation) =
    impl.Fault = Fault.None
    && impl.VirtioFault = Conformance.Model.Virtio.VirtioFault.None

/// Runs the scenario, then unmaps whatever is still live and runs the bottom halves.
let runAndRelease (impl: Implementation) (s: Scenario) =
    let first = impl.Run s

    let live =
        first.Mappings
        |> Seq.filter (fun kv -> kv.Value.Live)
        |> Seq.map (fun kv -> UnmapOp(kv.Key, System.Nullable()) :> ScenarioOp)
        |> List.ofSeq

    impl.Run(Scenario(s.Profile, s.Layout, Array.append (Array.ofSeq s.Ops) (Array.ofList (live @ [ RunBottomHalvesOp() ]))))
