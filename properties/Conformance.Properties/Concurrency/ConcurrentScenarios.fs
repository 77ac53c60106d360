/// Concurrency cases in the scenario language. A case of P20-P24 is a scenario with threads
/// (Scenario.Threads) on the concurrency machine (ParallelCommands.layout): operations before the threads
/// run on one thread first, then each thread's operations run in parallel. So a concurrency counterexample
/// is saved to fixtures/regressions/, replayed and explained like every other failure. The properties draw,
/// shrink and run their workloads as the typed cases below; this module turns a case into its scenario and
/// back, and refuses a scenario that is not exactly a case of a workload with its JSON path.
module Conformance.Properties.ConcurrentScenarios

open System
open System.Runtime.CompilerServices
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Properties.ParallelCommands

/// A case of one of the three concurrency workloads.
type ConcurrentCase =
    /// P20, P21, P23: a prefix, then threads of DMA commands.
    | Commands of ParallelCase
    /// P22: devices that map, register a client on failure and retry.
    | Wakeup of WakeupWorkload.WakeupCase
    /// P24: devices popping and pushing chains on their own queues.
    | Queues of ParallelVirtqueues.QueuesCase

let profileOf =
    function
    | Commands c -> c.Profile
    | Wakeup c -> c.Profile
    | Queues c -> c.Profile

/// The case in the workload's own words (the controlled schedules are derived from these lines).
let render =
    function
    | Commands c -> ParallelCommands.render c
    | Wakeup c -> WakeupWorkload.render c
    | Queues c -> ParallelVirtqueues.render c

// ---------------------------------------------------------------- case -> scenario

/// Actor 0 runs the operations before the threads; thread t (from 0) is actor t + 1. A mapping is named
/// after its actor and the number of the actor's map that made it: m0, m1 before the threads, t1m0 on the
/// first thread.
let mappingId (actor: int) (k: int) =
    if actor = 0 then
        sprintf "m%d" k
    else
        sprintf "t%dm%d" actor k

let private addressOf (target: Target) (actor: int) (offset: int) =
    (if target = Ram then RamBase else MmioBase)
    + uint64 (actor * SliceSize + offset)

let private commandOps (actor: int) (commands: Command list) : ScenarioOp list =
    commands
    |> List.mapFold
        (fun maps c ->
            match c with
            | Map(s, t, o, l, w) -> MapOp(mappingId actor maps, SpaceNames.[s], addressOf t actor o, uint64 l, w) :> ScenarioOp, maps + 1
            | WriteThrough(m, f) -> WriteMappedOp(mappingId actor m, 0UL, null, Nullable f), maps
            | Unmap(m, p) -> UnmapOp(mappingId actor m, Nullable(), AccessPercent = Nullable p), maps
            | Register s -> RegisterClientOp(SpaceNames.[s], clientName actor), maps
            | Unregister s -> UnregisterClientOp(SpaceNames.[s], clientName actor), maps)
        0
    |> fst

let private requestOps (d: int) (requests: WakeupWorkload.Request list) : ScenarioOp list =
    requests
    |> List.mapi (fun j r ->
        let id = mappingId d j

        [ yield MapOrWaitOp(id, SpaceNames.[r.Space], addressOf Mmio d r.Offset, uint64 r.Length, r.Write, clientName d) :> ScenarioOp
          // the device fills what it was granted with its own number (WakeupWorkload.run)
          if r.Write then
              yield WriteMappedOp(id, 0UL, null, Nullable(byte d))
          yield UnmapOp(id, Nullable()) ])
    |> List.concat

let private queueOps (d: int) (chains: ParallelVirtqueues.Buffer list list) : ScenarioOp list =
    let entries, heads = ParallelVirtqueues.descriptorsOf d chains
    let slice = ParallelVirtqueues.sliceOf d

    [ ServeQueueOp(
          SpaceNames.[0],
          ParallelVirtqueues.QueueSize,
          slice + uint64 ParallelVirtqueues.DescOffset,
          slice + uint64 ParallelVirtqueues.AvailOffset,
          slice + uint64 ParallelVirtqueues.UsedOffset,
          Array.ofList entries,
          Array.ofList heads
      ) ]

let private threadsOf (lists: ScenarioOp list list) =
    lists
    |> List.map (fun ops -> Array.ofList ops :> Collections.Generic.IReadOnlyList<ScenarioOp>)
    |> Array.ofList

/// The case as a scenario: the concurrency machine, the prefix as operations, one thread per actor.
let toScenario (c: ConcurrentCase) : Scenario =
    let prefix, threads =
        match c with
        | Commands pc -> commandOps 0 pc.Prefix, pc.Threads |> List.mapi (fun i t -> commandOps (i + 1) t)
        | Wakeup wc -> [], wc.Devices |> List.mapi (fun i d -> requestOps (i + 1) d)
        | Queues qc -> [], qc.Devices |> List.mapi (fun i d -> queueOps (i + 1) d)

    Scenario(profileOf c, layout, Array.ofList prefix, Threads = threadsOf threads)

// ---------------------------------------------------------------- scenario -> case

let private fail path message =
    raise (ScenarioFormatException(path, message))

let private layoutText (profile: Profile) (l: LayoutSpec) =
    ScenarioJson.Write(Scenario(profile, l, Array.empty))

let private spaceIndex (name: string) (path: string) =
    match Array.IndexOf(SpaceNames, name) with
    | -1 -> fail path (sprintf "the concurrency machine has the address spaces %s" (String.Join(" and ", SpaceNames)))
    | i -> i

/// Which target the bytes [addr, addr + len) of actor `actor` fall in, as (target, offset in the actor's
/// slice, length); they must lie inside the actor's own slice.
let private placeOf (actor: int) (addr: uint64) (len: uint64) (path: string) =
    let target = if addr < MmioBase then Ram else Mmio
    let start = addressOf target actor 0

    if addr < start || addr - start >= uint64 SliceSize then
        fail
            (path + ".addr")
            (sprintf
                "0x%x is outside this actor's slices (RAM 0x%x, MMIO 0x%x, %d bytes each: every actor's DMA stays in its own bytes)"
                addr
                (addressOf Ram actor 0)
                (addressOf Mmio actor 0)
                SliceSize)

    let offset = int (addr - start)

    if len < 1UL || len > uint64 (SliceSize - offset) then
        fail (path + ".len") (sprintf "expected a length from 1 to %d (to the end of the actor's slice)" (SliceSize - offset))

    target, offset, int len

/// The number k of mapping `id` of actor `actor` (named mappingId actor k).
let private mappingNumber (actor: int) (id: string) (path: string) =
    let prefix = (mappingId actor 0).TrimEnd('0')

    match
        id.StartsWith(prefix, StringComparison.Ordinal),
        Int32.TryParse(id.AsSpan(min prefix.Length id.Length), Globalization.NumberStyles.None, Globalization.CultureInfo.InvariantCulture)
    with
    | true, (true, k) when k <= 10_000 -> k
    | _ -> fail path (sprintf "this actor's mappings are named %s0, %s1, ... after its maps (found '%s')" prefix prefix id)

let private readCommands (actor: int) (ops: Collections.Generic.IReadOnlyList<ScenarioOp>) (path: string) : Command list =
    [ for i in 0 .. ops.Count - 1 do
          let at = sprintf "%s[%d]" path i

          match ops.[i] with
          | :? MapOp as m ->
              let target, offset, length = placeOf actor m.Addr m.Len at
              yield Map(spaceIndex m.Space (at + ".as"), target, offset, length, m.Write)
          | :? WriteMappedOp as w when w.FillByte.HasValue -> yield WriteThrough(mappingNumber actor w.Id (at + ".id"), w.FillByte.Value)
          | :? UnmapOp as u ->
              let percent =
                  if u.AccessPercent.HasValue then
                      u.AccessPercent.Value
                  elif not u.AccessLen.HasValue then
                      100
                  else
                      fail at "a thread unmaps a share of what it was granted: give 'percent'"

              yield Unmap(mappingNumber actor u.Id (at + ".id"), percent)
          | :? RegisterClientOp as c -> yield Register(spaceIndex c.Space (at + ".as"))
          | :? UnregisterClientOp as c -> yield Unregister(spaceIndex c.Space (at + ".as"))
          | _ -> fail (at + ".op") "P20, P21 and P23 run map, writeMapped with a fillByte, unmap, registerClient and unregisterClient" ]

let private readRequests (d: int) (ops: Collections.Generic.IReadOnlyList<ScenarioOp>) (path: string) : WakeupWorkload.Request list =
    [ for i in 0 .. ops.Count - 1 do
          match ops.[i] with
          | :? MapOrWaitOp as m ->
              let at = sprintf "%s[%d]" path i

              match placeOf d m.Addr m.Len at with
              | Mmio, offset, length ->
                  yield
                      ({ Space = spaceIndex m.Space (at + ".as")
                         Offset = offset
                         Length = length
                         Write = m.Write }
                      : WakeupWorkload.Request)
              | Ram, _, _ -> fail (at + ".addr") "P22's devices do DMA to MMIO, so that every request needs bounce space"
          | _ -> () ]

let private readChains (d: int) (ops: Collections.Generic.IReadOnlyList<ScenarioOp>) (path: string) : ParallelVirtqueues.Buffer list list =
    let at = path + "[0]"

    match List.ofSeq ops with
    | [ :? ServeQueueOp as q ] ->
        // each descriptor by its index, with where it stands in "entries" (for the JSON path)
        let byIndex = q.Entries |> Seq.mapi (fun i e -> e.Index, (i, e)) |> dict

        let chainFrom (head: uint16) =
            let rec go (index: int) (seen: int) acc =
                match byIndex.TryGetValue index with
                | true, (i, e) when seen < q.Entries.Count ->
                    let entryPath = sprintf "%s.entries[%d]" at i
                    let target, offset, length = placeOf d e.Addr (uint64 e.Len) entryPath

                    if target = Ram && offset < ParallelVirtqueues.RamBufferBase then
                        fail
                            (entryPath + ".addr")
                            (sprintf "descriptor %d points into the device's rings (its RAM buffers start at +0x%x)" index ParallelVirtqueues.RamBufferBase)

                    let buffer: ParallelVirtqueues.Buffer =
                        { Target = target
                          Offset =
                            if target = Ram then
                                offset - ParallelVirtqueues.RamBufferBase
                            else
                                offset
                          Length = length
                          DeviceWrites = e.Flags &&& VirtioConstants.DescFlagWrite <> 0us }

                    if e.Flags &&& VirtioConstants.DescFlagNext <> 0us then
                        go (int e.Next) (seen + 1) (buffer :: acc)
                    else
                        List.rev (buffer :: acc)
                | _ -> fail (at + ".entries") (sprintf "the chain from head %d names descriptor %d, which is not in the table (or loops)" head index)

            go (int head) 0 []

        q.Heads |> Seq.map chainFrom |> List.ofSeq
    | _ -> fail path "a P24 device's thread is one serveQueue operation"

/// Where the scenario differs from the one the case writes: the first operation that does, with the
/// operation the workload expects there.
let private firstDifference (expected: Scenario) (given: Scenario) =
    let lists (s: Scenario) =
        ("$.ops", s.Ops)
        :: (s.Threads
            |> Seq.mapi (fun t ops -> sprintf "$.threads[%d]" t, ops)
            |> List.ofSeq)

    Seq.zip (lists expected) (lists given)
    |> Seq.tryPick (fun ((path, want), (_, got)) ->
        seq { 0 .. max want.Count got.Count - 1 }
        |> Seq.tryPick (fun i ->
            match (if i < want.Count then Some want.[i] else None), (if i < got.Count then Some got.[i] else None) with
            | Some w, Some g when ScenarioJson.Write(w: ScenarioOp) = ScenarioJson.Write(g: ScenarioOp) -> None
            | Some w, _ -> Some(sprintf "%s[%d]" path i, sprintf "expected \"%s\" here (how the workload writes this case)" (ScenarioTrace.Describe w))
            | None, _ -> Some(sprintf "%s[%d]" path i, "this operation is not part of the case the workload runs")))

/// The case a scenario is. Anything that is not exactly a case of a concurrency workload on the concurrency
/// machine is refused with its JSON path (a ScenarioFormatException).
let ofScenario (s: Scenario) : ConcurrentCase =
    if not s.IsConcurrent then
        fail "$" "a concurrency case runs threads: give them as \"threads\": [[operations], ...]"

    if layoutText s.Profile s.Layout <> layoutText s.Profile layout then
        fail "$.layout" "concurrency cases run on the concurrency machine (docs/concurrency.md): write the layout a saved case has"

    if s.Threads.Count > MaxActors - 1 then
        fail "$.threads" (sprintf "expected 1 to %d threads (each owns a slice of the machine), found %d" (MaxActors - 1) s.Threads.Count)

    let threads = List.ofSeq s.Threads

    let case =
        match threads |> List.tryPick (Seq.tryHead) with
        | Some(:? MapOrWaitOp) ->
            Wakeup
                { Profile = s.Profile
                  Devices =
                    threads
                    |> List.mapi (fun t ops -> readRequests (t + 1) ops (sprintf "$.threads[%d]" t)) }
        | Some(:? ServeQueueOp) ->
            Queues
                { Profile = s.Profile
                  Devices =
                    threads
                    |> List.mapi (fun t ops -> readChains (t + 1) ops (sprintf "$.threads[%d]" t)) }
        | _ ->
            Commands
                { Profile = s.Profile
                  Prefix = readCommands 0 s.Ops "$.ops"
                  Threads =
                    threads
                    |> List.mapi (fun t ops -> readCommands (t + 1) ops (sprintf "$.threads[%d]" t)) }

    match firstDifference (toScenario case) s with
    | Some(path, message) -> fail path message
    | None -> case

/// The scenarios the properties draw keep their case, so judging one does not read it back.
let private cases = ConditionalWeakTable<Scenario, ConcurrentCase>()

/// toScenario, remembering the case.
let scenarioOf (c: ConcurrentCase) =
    let s = toScenario c
    cases.AddOrUpdate(s, c)
    s

/// ofScenario, or the case the scenario was made from.
let caseOf (s: Scenario) =
    match cases.TryGetValue s with
    | true, c -> c
    | _ -> ofScenario s
