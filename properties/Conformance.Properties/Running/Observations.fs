/// Reading a target's observation: the elements a scenario popped, the ones still outstanding, guest
/// memory read back through the same instance. Properties judge observations only (they never see a
/// model instance), so anything a target can show, a property can use.
module Conformance.Properties.Observations

open System
open System.Collections.Generic
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets

/// Runs the scenario on a fresh instance and keeps it open, so the property can read guest memory
/// afterwards (reads appended after the observation was taken; they do not change it).
let openRun (target: ITarget) (scenario: Scenario) =
    let session = target.Open(scenario.Profile, scenario.Layout)

    try
        for op in scenario.Ops do
            session.Apply op |> ignore

        session, session.Observe()
    with _ ->
        session.Dispose()
        reraise ()

/// `n` bytes of guest memory at `addr` in `space`, read through the session (address_space_read).
let readGuest (session: ITargetSession) (space: string) (addr: uint64) (n: int) =
    match session.Apply(ReadOp(space, addr, uint64 n)).BytesRead with
    | null -> failwithf "the target did not read %d bytes at 0x%x in %s" n addr space
    | bytes -> bytes

let readU16 (session: ITargetSession) (space: string) (addr: uint64) =
    BitConverter.ToUInt16(readGuest session space addr 2, 0)

/// The element each pop name holds (the latest pop under that name).
let elements (run: Observation) =
    let d = Dictionary<string, ElementRecord>()

    for s in run.Steps do
        match s.Op, Option.ofObj s.Virtio with
        | (:? PopOp as p), Some v when not (isNull v.Element) -> d.[p.Element] <- v.Element
        | _ -> ()

    d

/// Popped elements not released since (pushed, detached or unpopped), in pop order.
let outstanding (run: Observation) =
    let held = Collections.Generic.List<string * ElementRecord>()

    for s in run.Steps do
        match s.Op, Option.ofObj s.Virtio with
        | (:? PopOp as p), Some v when not (isNull v.Element) -> held.Add((p.Element, v.Element))
        | (:? ReleaseOp as r), _ when isNull s.Skipped -> held.RemoveAll(fun (n, _) -> n = r.Element) |> ignore
        | _ -> ()

    List.ofSeq held

/// The queue size the scenario set the device up with (256 when it set none up).
let queueSize (scenario: Scenario) =
    scenario.Ops
    |> Seq.tryPick (function
        | :? VirtioSetupOp as v -> Some v.QueueSize
        | _ -> None)
    |> Option.defaultValue 256

/// For each executed release step (by index), the element it released: the latest pop under its name.
let releasedAt (run: Observation) =
    let current = Dictionary<string, ElementRecord>()
    let d = Dictionary<int, ElementRecord>()

    for s in run.Steps do
        match s.Op, Option.ofObj s.Virtio with
        | (:? PopOp as p), Some v when not (isNull v.Element) -> current.[p.Element] <- v.Element
        | (:? ReleaseOp as r), _ when isNull s.Skipped && current.ContainsKey r.Element -> d.[s.Index] <- current.[r.Element]
        | _ -> ()

    d
