/// P26 targets-agree: a target and the reference, given the same virtio-blk scenario, must be seen alike by
/// the guest: the same used elements, broken flag, DEVICE_NEEDS_RESET, queue indices, bytes read back,
/// disk image and error lines. Where the target has a registered deviation (TargetMachine.Deviations), what
/// the finding makes unspecified is left out of the comparison and said so in the case's labels.
module Conformance.Properties.Agreement

open System
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets

/// What the guest can see of a run: its used elements, broken flag, status byte, queue indices (last_avail_idx,
/// used_idx, inuse), the bytes each read returned (by address), the disk afterwards and the error lines.
type Seen =
    {
        Used: (uint32 * uint32) list
        Broken: bool
        /// DEVICE_NEEDS_RESET in the status byte, where the transport shows it (VERSION_1); None elsewhere.
        NeedsReset: bool option
        Queue: uint16 * uint16 * int
        Reads: (uint64 * byte[]) list
        Disk: byte[] option
        Errors: string list
        /// Bytes written back that nobody produced (a bounce buffer's tail): F-BLK-2 makes them unspecified.
        Unproduced: bool
        Failure: string option
    }

let seen (o: Observation) =
    let v = o.Virtio

    { Used =
        if isNull v then
            []
        else
            v.Used |> Seq.map (fun struct (i, l) -> i, l) |> List.ofSeq
      Broken = not (isNull v) && v.Broken
      NeedsReset =
        if isNull v || not v.Version1 then
            None
        else
            Some(v.Status &&& Conformance.Model.Virtio.VirtioConstants.StatusNeedsReset <> 0uy)
      Queue =
        if isNull v then
            (0us, 0us, 0)
        else
            (v.LastAvailIdx, v.UsedIdx, v.InUse)
      Reads =
        [ for s in o.Steps do
              match s.Op with
              | :? ReadOp as r when not (isNull s.BytesRead) -> r.Addr, s.BytesRead
              | _ -> () ]
      Disk = if isNull v || v.Disk.Length = 0 then None else Some v.Disk
      Errors = if isNull v then [] else List.ofSeq v.Errors
      Unproduced = o.Memory.UnproducedBytesWrittenBack > 0L
      Failure = Option.ofObj o.Failure }

/// Whether an access at `a` in "memory" bounces on `layout` (its region is not directly mapped for a write):
/// where F-BLK-2's never-produced bytes can appear. Views are rendered once per layout.
let private bouncedIn =
    let views =
        Runtime.CompilerServices.ConditionalWeakTable<LayoutSpec, AddressSpace>()

    fun (layout: LayoutSpec) (a: uint64) ->
        let memory =
            views.GetValue(layout, fun l -> MemoryTopology(l).AddressSpaces |> Seq.find (fun s -> s.Name = "memory"))

        not (memory.View.Translate(a).Region.IsDirect true)

/// Every difference between the target's run and the reference's, in words (empty: they agree). With
/// `uninitialisedBounce` (F-BLK-2 registered for the target), bytes read back from buffers that bounce are
/// not compared where the reference wrote back bytes nobody produced.
let differences (uninitialisedBounce: bool) (layout: LayoutSpec) (target: Seen) (reference: Seen) =
    let bounced = bouncedIn layout
    // several requests of one kick complete in whatever order the block layer finishes them
    [ match target.Failure with
      | Some f -> sprintf "the target failed: %s" f
      | None -> ()
      if List.sort target.Used <> List.sort reference.Used then
          sprintf "used ring: target %A, reference %A" target.Used reference.Used
      if target.Broken <> reference.Broken then
          sprintf "broken: target %b, reference %b" target.Broken reference.Broken
      if target.Queue <> reference.Queue then
          let (a1, u1, i1), (a2, u2, i2) = target.Queue, reference.Queue
          sprintf "queue 0 (last_avail_idx, used_idx, inuse): target (%d, %d, %d), reference (%d, %d, %d)" a1 u1 i1 a2 u2 i2
      match target.NeedsReset with
      | Some needsReset when needsReset <> reference.Broken ->
          sprintf "DEVICE_NEEDS_RESET: target %b, but the reference's device is %s" needsReset (if reference.Broken then "broken" else "working")
      | _ -> ()
      if target.Reads.Length = reference.Reads.Length then
          for ((a, q), (_, m)) in List.zip target.Reads reference.Reads do
              if q <> m && not (uninitialisedBounce && reference.Unproduced && bounced a) then
                  sprintf "bytes at 0x%x differ: target %s, reference %s" a (ScenarioTrace.Hex q) (ScenarioTrace.Hex m)
      else
          sprintf "reads: the target answered %d, the reference %d" target.Reads.Length reference.Reads.Length
      match target.Disk, reference.Disk with
      | Some q, Some m when not (ReadOnlySpan(q).SequenceEqual(ReadOnlySpan m)) ->
          let sectors =
              [ for s in 0 .. min q.Length m.Length / 512 - 1 do
                    if not (ReadOnlySpan(q, s * 512, 512).SequenceEqual(ReadOnlySpan(m, s * 512, 512))) then
                        yield s ]

          sprintf "disk image differs (%d vs %d bytes) in sectors %A" q.Length m.Length (sectors |> List.truncate 8)
      | _ -> ()
      let shown = String.Join("\n", target.Errors)

      for e in reference.Errors do
          if not (shown.Contains e) then
              sprintf "the reference reports \"%s\"; the target printed: %s" e (shown.Trim()) ]

/// The observation a difference (a line of `differences`) is about, as the version matrix names it.
let observationOf (difference: string) =
    if difference.StartsWith "used ring" then
        "used ring"
    elif difference.StartsWith "broken" then
        "broken flag"
    elif difference.StartsWith "queue 0" then
        "queue 0 state"
    elif difference.StartsWith "DEVICE_NEEDS_RESET" then
        "DEVICE_NEEDS_RESET"
    elif difference.StartsWith "bytes at" || difference.StartsWith "reads:" then
        "device-writable bytes"
    elif difference.StartsWith "disk image" then
        "disk image"
    elif difference.StartsWith "the target failed" then
        "target failure"
    else
        "error lines"

/// Both runs side by side, rows that differ marked.
let sideBySide (targetName: string) (target: Seen) (referenceName: string) (reference: Seen) =
    let row (what: string) (q: string) (m: string) =
        sprintf "%s %-28s %-40s %s" (if q = m then " " else "≠") what q m

    let hex (b: byte[]) =
        if b.Length > 16 then
            ScenarioTrace.Hex b.[..15] + "..."
        else
            ScenarioTrace.Hex b

    let (a1, u1, i1), (a2, u2, i2) = target.Queue, reference.Queue

    let resetOf (s: Seen) =
        match s.NeedsReset with
        | Some b -> string b
        | None -> "(not shown)"

    [ sprintf "  %-28s %-40s %s" "" targetName referenceName
      row "used ring" (sprintf "%A" target.Used) (sprintf "%A" reference.Used)
      row "broken" (string target.Broken) (string reference.Broken)
      row "DEVICE_NEEDS_RESET" (resetOf target) (resetOf reference)
      row "last_avail/used_idx/inuse" (sprintf "%d/%d/%d" a1 u1 i1) (sprintf "%d/%d/%d" a2 u2 i2)
      if target.Reads.Length = reference.Reads.Length then
          for ((a, q), (_, m)) in List.zip target.Reads reference.Reads do
              row (sprintf "bytes at 0x%x (+%d)" a q.Length) (hex q) (hex m)
      let shown = String.Join("\n", target.Errors)

      let all =
          reference.Errors |> List.forall (fun l -> shown.Contains l)
          && (not reference.Errors.IsEmpty || shown.Trim() = "")

      sprintf "%s %-28s %-40s %s" (if all then " " else "≠") "error lines" (shown.Trim().Replace("\n", " | ")) (String.Join(" | ", reference.Errors)) ]

/// Labels for the case distribution, from the case's description where the scenario was generated.
let private labelsOf (scenario: Scenario) (target: Seen) (reference: Seen) (uninitialisedBounce: bool) =
    [ if reference.Broken then
          "device broke"
      if target.NeedsReset = Some true then
          "DEVICE_NEEDS_RESET seen (modern)"
      if reference.Unproduced then
          if uninitialisedBounce then
              "known deviation F-BLK-2: uninitialised bounce bytes written back"
          else
              "bounce bytes nobody produced written back (compared: F-BLK-2 is not registered for this target)"
      match DifferentialCases.specOf scenario with
      | None -> ()
      | Some spec ->
          if spec.Requests.Length > 1 && spec.Kicks.IsEmpty then
              sprintf "%d requests in one kick" spec.Requests.Length

          if not spec.Kicks.IsEmpty && not spec.InFlight then
              sprintf "%d kicks, each after the previous completed" spec.Kicks.Length

          if spec.InFlight then
              sprintf "%d kicks, requests in flight between them" spec.Kicks.Length

          for p in
              spec.Requests
              |> List.collect (fun r -> r.Pieces |> List.map fst)
              |> List.distinct do
              if p <> 0 then
                  sprintf "a buffer in %s" (snd DifferentialCases.places.[p])

          if spec.Requests |> List.exists (fun r -> r.StatusInMmio) then
              "a status byte in MMIO"

          for r in spec.Requests do
              if r.Malformed <> DifferentialCases.WellFormed then
                  sprintf "malformed chain: %A" r.Malformed

          if spec.Requests |> List.exists (fun r -> r.Indirect) then
              "an indirect table"

          if
              spec.Requests
              |> List.exists (fun r -> r.TableAt = DifferentialCases.TableInMmio)
          then
              "an indirect table in MMIO"

          if
              spec.Requests
              |> List.exists (fun r -> r.TableAt = DifferentialCases.TableAcrossMmioEnd)
          then
              "an indirect table across the end of MMIO"

          for (name, place) in
              [ "descriptor table", spec.Rings.DescIn
                "available ring", spec.Rings.AvailIn
                "used ring", spec.Rings.UsedIn ] do
              if place <> DifferentialCases.RingInRam then
                  sprintf
                      "%s in %s"
                      name
                      (match place with
                       | DifferentialCases.RingInMmio -> "MMIO"
                       | DifferentialCases.RingInRom -> "ROM"
                       | DifferentialCases.RingInUnassigned -> "unassigned space"
                       | DifferentialCases.RingInRam -> "RAM") ]

/// Both targets' runs of a scenario and their differences.
type Comparison =
    { Target: Seen
      Reference: Seen
      ReferenceRun: Observation
      Differences: string list
      UninitialisedBounce: bool }

/// Runs the scenario on both targets and compares what the guest sees.
let compare (target: ITarget) (reference: ITarget) (scenario: Scenario) =
    let uninitialisedBounce =
        not (isNull target.Machine) && target.Machine.Deviates "F-BLK-2"

    let t = seen (target.Run scenario)
    let run = reference.Run scenario
    let r = seen run

    match target with
    | :? IKeepsStateAcrossScenarios as keeps -> keeps.AfterReference run
    | _ -> ()

    { Target = t
      Reference = r
      ReferenceRun = run
      Differences = differences uninitialisedBounce scenario.Layout t r
      UninitialisedBounce = uninitialisedBounce }

/// A comparison in words, as P26 reports a case: the case's description, every difference, and both runs
/// side by side.
let explain (scenario: Scenario) (targetName: string) (referenceName: string) (c: Comparison) =
    [ match scenario.Description with
      | null -> ()
      | d -> sprintf "case: %s" d ]
    @ c.Differences
    @ sideBySide targetName c.Target referenceName c.Reference

/// P26's judgement of one scenario: every difference is a violation, with both runs side by side.
let judge (target: ITarget) (reference: ITarget) (scenario: Scenario) : Verdict.CaseResult =
    let c = compare target reference scenario

    let verdicts =
        if c.Differences.IsEmpty then
            []
        else
            [ Verdict.Violated(String.concat "\n" (explain scenario target.Name reference.Name c)) ]

    Verdict.judged (labelsOf scenario c.Target c.Reference c.UninitialisedBounce) verdicts
