/// The property catalogue: every named invariant with the rule it checks, its generator, and the
/// deliberately broken variant of the model that it must reject.
module Conformance.Properties.Catalogue

open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets

type ConcurrentCase = ConcurrentScenarios.ConcurrentCase

/// What a generator writes cases for: the profile, and the fixed machine of the target if it has one (a
/// target that runs any layout has none, and generators then build their own).
type Generation =
    { Profile: Profile
      Machine: TargetMachine option }

/// How a property draws its cases and judges one on a target.
type Judging =
    /// Scenarios, one at a time: run on the target, judged from its observation (P1-P19, P25).
    | OnScenarios of judge: (ITarget -> Scenario -> Verdict.CaseResult) * arbitrary: (Generation -> Arbitrary<Scenario>)
    /// Scenarios with threads (concurrency cases): each run many times on real threads and under controlled
    /// schedules, on in-process instances of the target (P20-P24). The judge refuses a scenario that is not
    /// a case of its workload with a ScenarioFormatException.
    | OnConcurrentCases of judge: (IInProcessTarget -> Scenario -> Verdict.CaseResult) * arbitrary: (Profile -> Arbitrary<Scenario>)
    /// Scenarios run on the target and on a reference target the runner is given, judged from both
    /// observations (P26: the differential).
    | AgainstReference of judge: (ITarget -> ITarget -> Scenario -> Verdict.CaseResult) * arbitrary: (Generation -> Arbitrary<Scenario>)

/// One property: every sequential and concurrent property is an entry of this one catalogue.
type Entry =
    {
        Number: int
        Name: string
        Title: string
        /// The QEMU rules (file:function) or spec sections the property holds a target to.
        Rules: string list
        /// The broken variants of the model this property must reject under a profile.
        Broken: Profile -> Variant list
        /// What a target must be able to do and show for this property to judge it (skipped otherwise).
        Requires: Capabilities
        Judging: Judging
    }

    member e.IsConcurrent =
        match e.Judging with
        | OnConcurrentCases _ -> true
        | OnScenarios _
        | AgainstReference _ -> false

    member e.NeedsReference =
        match e.Judging with
        | AgainstReference _ -> true
        | OnScenarios _
        | OnConcurrentCases _ -> false

/// Scenarios whose operations are plain transfers (address_space_read/write), for comparing approaches.
let transferScenarios (profile: Profile) =
    let gen =
        Generators.genScenario profile
        |> Gen.map (fun s ->
            let transfers =
                s.Ops |> Array.ofSeq |> Array.filter (fun o -> o :? ReadOp || o :? WriteOp)

            Scenario(s.Profile, s.Layout, transfers))

    Arb.fromGenShrink (
        gen,
        Generators.shrinkScenario
        >> Seq.filter (fun s -> s.Ops |> Seq.forall (fun o -> o :? ReadOp || o :? WriteOp))
    )

/// A generator that builds its own layouts: its properties need a target that runs any layout
/// (Capabilities.AnyLayout).
let private anyLayout (arb: Profile -> Arbitrary<Scenario>) = fun (g: Generation) -> arb g.Profile

/// virtio-blk requests written on the target's machine (or on the model's test machine).
let private onTheMachine (g: Generation) =
    Arb.fromGen (BlkProperties.genRequests (BlkProperties.placementOf g.Machine) g.Profile)

/// What the generated DMA scenarios use (map/unmap, map clients, plain transfers) and what the DMA
/// properties read (references, bounce bytes, device callbacks, dirty pages).
let private dma =
    Capabilities.DmaMapping
    ||| Capabilities.MapClients
    ||| Capabilities.GuestMemory
    ||| Capabilities.MemoryInternals
    ||| Capabilities.AnyLayout

/// What the virtqueue scenarios use (rings written as guest memory, pops and releases called directly)
/// and read (element pieces, dirty pages, references, live mappings).
let private virtqueue =
    Capabilities.GuestMemory
    ||| Capabilities.VirtqueueCalls
    ||| Capabilities.MemoryInternals
    ||| Capabilities.AnyLayout

let private dmaEntries: Entry list =
    [ { Number = 1
        Name = "refcount-balance"
        Title = "Owner references: baseline + live mappings, back to baseline after all unmaps"
        Rules =
          [ "softmmu/physmem.c:address_space_map (memory_region_ref)"
            "softmmu/physmem.c:address_space_unmap (memory_region_unref)"
            "softmmu/memory.c:memory_region_ref" ]
        Broken = fun _ -> [ Variant.Of Fault.SkipUnref ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.refcountBalance, anyLayout Generators.arbScenario) }
      { Number = 2
        Name = "write-back-on-unmap"
        Title = "Bounce write mappings reach the device only at unmap, exactly access_len bytes, in address order"
        Rules =
          [ "softmmu/physmem.c:address_space_unmap (address_space_write of access_len bytes)"
            "softmmu/physmem.c:flatview_write_continue" ]
        Broken = fun _ -> [ Variant.Of Fault.WriteBackAtMap ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.writeBackOnUnmap, anyLayout Generators.arbScenario) }
      { Number = 3
        Name = "read-at-map"
        Title = "Bounce read mappings read the device at map time; their unmap writes nothing"
        Rules =
          [ "softmmu/physmem.c:address_space_map (flatview_read into the bounce buffer)"
            "softmmu/physmem.c:flatview_read_continue" ]
        Broken = fun _ -> [ Variant.Of Fault.ReadAtUnmap ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.readAtMap, anyLayout Generators.arbScenario) }
      { Number = 4
        Name = "dirty-exactness"
        Title = "Write unmaps dirty exactly the pages of [addr, addr+access_len) in every active client; reads dirty nothing"
        Rules =
          [ "softmmu/physmem.c:invalidate_and_set_dirty"
            "include/exec/ram_addr.h:cpu_physical_memory_set_dirty_range"
            "softmmu/memory.c:memory_region_get_dirty_log_mask" ]
        Broken = fun _ -> [ Variant.Of Fault.DirtyOnRead ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.dirtyExactness, anyLayout Generators.arbScenario) }
      { Number = 5
        Name = "map-length"
        Title = "Map lengths: contiguous for direct, page/budget-capped for bounce, > 0 unless failed, never over the request"
        Rules =
          [ "softmmu/physmem.c:address_space_translate_internal"
            "softmmu/physmem.c:flatview_extend_translation"
            "softmmu/physmem.c:qemu_ram_ptr_length"
            "softmmu/physmem.c:address_space_map" ]
        Broken = fun _ -> [ Variant.Of Fault.NoSectionClamp ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.mapLength, anyLayout Generators.arbScenario) }
      { Number = 6
        Name = "bounce-exclusivity"
        Title = "Qemu72: one bounce mapping system-wide; Qemu92: per-AS bytes within budget; failed maps succeed after release"
        Rules =
          [ "softmmu/physmem.c:address_space_map (bounce.in_use)"
            "system/physmem.c:address_space_map (bounce_buffer_size)"
            "system/memory.c:address_space_init" ]
        Broken = fun _ -> [ Variant.Of Fault.LeakBounceSpace ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.bounceExclusivity, anyLayout Generators.arbScenario) }
      { Number = 7
        Name = "map-clients"
        Title = "Map clients are woken once when bounce space frees (or at once), never after unregistering"
        Rules =
          [ "softmmu/physmem.c:cpu_register_map_client"
            "softmmu/physmem.c:cpu_unregister_map_client"
            "softmmu/physmem.c:cpu_notify_map_clients_locked" ]
        Broken = fun _ -> [ Variant.Of Fault.UnregisterIgnored ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.mapClients, anyLayout Generators.arbScenario) }
      { Number = 8
        Name = "approaches-agree"
        Title = "map/write/unmap and address_space_read/write leave identical memory, devices and dirty bits"
        Rules =
          [ "softmmu/physmem.c:address_space_map/unmap"
            "softmmu/physmem.c:address_space_read/address_space_write" ]
        Broken = fun _ -> [ Variant.Of Fault.WriteSkipsDirty ]
        Requires =
          Capabilities.DmaMapping
          ||| Capabilities.GuestMemory
          ||| Capabilities.MemoryContents
          ||| Capabilities.AnyLayout
        Judging = OnScenarios(DmaProperties.approachesAgree, anyLayout transferScenarios) }
      { Number = 9
        Name = "no-invented-bytes"
        Title = "Bytes written back were produced by the caller, or are marked as never produced / zero-fill"
        Rules =
          [ "softmmu/physmem.c:address_space_map (qemu_memalign, uninitialised)"
            "system/physmem.c:address_space_map (g_malloc0)"
            "include/exec/memory.h:address_space_map (reads OR writes)" ]
        Broken = fun _ -> [ Variant.Of Fault.WriteBackWholeBuffer ]
        Requires = dma
        Judging = OnScenarios(DmaProperties.noInventedBytes, anyLayout Generators.arbScenario) }
      { Number = 10
        Name = "flattening"
        Title = "FlatView translation agrees with a naive topmost-region-by-priority search"
        Rules =
          [ "softmmu/memory.c:render_memory_region"
            "softmmu/memory.c:memory_region_update_container_subregions"
            "softmmu/memory.c:flatview_simplify" ]
        Broken = fun _ -> [ Variant.Of Fault.IgnorePriority ]
        Requires = Capabilities.FlatViews ||| Capabilities.AnyLayout
        Judging = OnScenarios(DmaProperties.flattening, anyLayout Generators.arbScenario) } ]

let private virtioEntries: Entry list =
    let arbGeneric p =
        Arb.fromGenShrink (VirtioCases.genGenericCase p, Generators.shrinkScenario)

    let arbErrorPaths p =
        Arb.fromGenShrink (Gen.frequency [ 2, VirtioCases.genGenericCase p; 1, VirtioCases.genMalformedCase p ], Generators.shrinkScenario)

    [ { Number = 11
        Name = "element-conservation"
        Title = "Every popped element is released once; inuse = popped - released; used.idx advances by the pushes"
        Rules =
          [ "VIRTIO 1.2 §2.7.8"
            "hw/virtio/virtio.c:virtqueue_split_pop"
            "hw/virtio/virtio.c:virtqueue_flush" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.FlushKeepsInUse ]
        Requires = virtqueue
        Judging = OnScenarios(VirtioProperties.elementConservation, anyLayout arbGeneric) }
      { Number = 12
        Name = "mapping-balance"
        Title = "After every element is released (or the device broke), no mapping, bounce byte or extra reference remains"
        Rules =
          [ "hw/virtio/virtio.c:virtqueue_undo_map_desc"
            "hw/virtio/virtio.c:virtqueue_unmap_sg"
            "CVE-2022-26353"
            "CVE-2022-26354" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.NoUndoOnError ]
        Requires = virtqueue
        Judging = OnScenarios(VirtioProperties.mappingBalance, anyLayout arbErrorPaths) }
      { Number = 13
        Name = "written-length"
        Title = "A push with length L writes exactly the first L bytes of the in-buffers, nothing of the out-buffers"
        Rules = [ "VIRTIO 1.2 §2.7.8.2"; "hw/virtio/virtio.c:virtqueue_unmap_sg" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.LengthToOutBuffers ]
        Requires = virtqueue
        Judging = OnScenarios(VirtioProperties.writtenLength, anyLayout arbGeneric) }
      { Number = 14
        Name = "used-ring"
        Title = "Used elements carry head and length in push order, written before the index that publishes them"
        Rules =
          [ "VIRTIO 1.2 §2.7.8"
            "VIRTIO 1.2 §2.7.13.3.1"
            "hw/virtio/virtio.c:virtqueue_split_fill"
            "hw/virtio/virtio.c:virtqueue_split_flush" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.IndexBeforeEntry ]
        Requires = virtqueue ||| Capabilities.RingWriteOrder
        Judging = OnScenarios(VirtioProperties.usedRing, anyLayout arbGeneric) }
      { Number = 15
        Name = "malformed-rings"
        Title = "Random rings end in an element, an empty queue or a broken device; never an exception; chain walks are bounded"
        Rules =
          [ "VIRTIO 1.2 §2.7.5.3.1"
            "hw/virtio/virtio.c:virtqueue_split_pop"
            "CVE-2016-6490"
            "CVE-2016-7422" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.NoLoopDetection ]
        Requires = virtqueue
        Judging = OnScenarios(VirtioProperties.malformedRings, anyLayout (fun p -> Arb.fromGen (VirtioProperties.genRandomRing p))) }
      { Number = 16
        Name = "malformed-verdicts"
        Title = "Chains built malformed end as QEMU ends them: the expected virtio_error, broken, everything unmapped"
        Rules =
          [ "VIRTIO 1.2 §2.7.5.3"
            "VIRTIO 1.2 §2.1.2"
            "hw/virtio/virtio.c:virtqueue_split_pop"
            "CVE-2016-5403" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.NoInUseCheck ]
        Requires = virtqueue
        Judging = OnScenarios(VirtioProperties.malformedVerdicts, anyLayout (fun p -> Arb.fromGen (VirtioCases.genMalformedCase p))) }
      { Number = 17
        Name = "notification"
        Title = "The device notifies iff vring_need_event (EVENT_IDX) or VRING_AVAIL_F_NO_INTERRUPT is clear"
        Rules =
          [ "VIRTIO 1.2 §2.7.7.2"
            "VIRTIO 1.2 §2.7.10"
            "hw/virtio/virtio.c:virtio_split_should_notify" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.AlwaysNotify ]
        Requires = Capabilities.InProcessInstances
        Judging = OnScenarios(VirtioProperties.notification, anyLayout VirtioProperties.arbNotify) }
      { Number = 18
        Name = "blk-requests"
        Title = "virtio-blk: reads return the disk, writes change exactly their sectors, status and used length right, MMIO buffers bounce or fail as QEMU does"
        Rules =
          [ "VIRTIO 1.2 §5.2.6"
            "hw/block/virtio-blk.c:virtio_blk_handle_request"
            "hw/block/virtio-blk.c:virtio_blk_req_complete"
            "softmmu/physmem.c:address_space_map (bounce limit)" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.LengthToOutBuffers ]
        Requires = Capabilities.VirtioBlk ||| Capabilities.GuestMemory
        Judging = OnScenarios(BlkProperties.blkRequests, onTheMachine) }
      { Number = 19
        Name = "used-length-honesty"
        Title = "A device never reports more used bytes than it produced (VIRTIO 1.2 §2.7.8.2)"
        Rules = [ "VIRTIO 1.2 §2.7.8.2"; "hw/block/virtio-blk.c:virtio_blk_req_complete" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.ReportedLenPlusOne ]
        Requires = Capabilities.VirtioBlk ||| Capabilities.GuestMemory
        Judging = OnScenarios(BlkProperties.usedLengthHonesty, onTheMachine) }
      { Number = 25
        Name = "kick-suppression"
        Title = "virtio-blk suppresses guest kicks while it drains the queue and allows them again when done (used->flags or avail_event)"
        Rules =
          [ "VIRTIO 1.2 §2.7.10"
            "hw/block/virtio-blk.c:virtio_blk_handle_vq"
            "hw/virtio/virtio.c:virtio_queue_set_notification"
            "hw/virtio/virtio.c:vring_set_avail_event" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.KicksLeftSuppressed ]
        Requires =
          Capabilities.VirtioBlk
          ||| Capabilities.GuestMemory
          ||| Capabilities.RingWriteOrder
          ||| Capabilities.AnyLayout
        Judging =
          OnScenarios(BlkProperties.kickSuppression, anyLayout (fun p -> Arb.fromGenShrink (BlkProperties.genKickCases p, BlkProperties.shrinkKickCase))) } ]

// ---------------------------------------------------------------- the differential (P26)

let private differentialEntries: Entry list =
    [ { Number = 26
        Name = "targets-agree"
        Title =
          "A target and the reference model, given the same virtio-blk requests, look alike to the guest: used ring, broken flag, DEVICE_NEEDS_RESET, queue indices, buffers, disk and error lines"
        Rules =
          [ "VIRTIO 1.2 §2.7.8"
            "VIRTIO 1.2 §5.2.6"
            "hw/block/virtio-blk.c:virtio_blk_handle_request"
            "hw/virtio/virtio.c:virtqueue_split_pop"
            "softmmu/physmem.c:address_space_map (bounce)"
            "softmmu/physmem.c:address_space_unmap (write-back)" ]
        Broken =
          fun _ ->
              [ Variant.Of Fault.WriteBackAtMap
                Variant.Of Conformance.Model.Virtio.VirtioFault.LengthToOutBuffers ]
        Requires = Capabilities.VirtioBlk ||| Capabilities.GuestMemory
        Judging = AgainstReference(Agreement.judge, (fun g -> DifferentialCases.arbitrary g.Machine g.Profile)) } ]

// ---------------------------------------------------------------- concurrency (P20-P24)

/// A concurrency property over one workload: its cases drawn and shrunk as the workload's own and seen as
/// scenarios with threads (ConcurrentScenarios), judged on an in-process target.
let private concurrent
    (wrap: 'c -> ConcurrentCase)
    (unwrap: ConcurrentCase -> 'c option)
    (workload: string)
    (arb: Profile -> Arbitrary<'c>)
    (judge: IInProcessTarget -> 'c -> Verdict.CaseResult)
    =
    let caseOf (s: Scenario) =
        match unwrap (ConcurrentScenarios.caseOf s) with
        | Some c -> c
        | None -> raise (ScenarioFormatException("$.threads", sprintf "not a case of this property, whose threads %s" workload))

    OnConcurrentCases((fun target s -> judge target (caseOf s)), (fun profile -> Arb.convert (wrap >> ConcurrentScenarios.scenarioOf) caseOf (arb profile)))

let private onCommands =
    concurrent
        ConcurrentScenarios.Commands
        (function
        | ConcurrentScenarios.Commands c -> Some c
        | _ -> None)
        "map, write through, unmap and register map clients"
        ParallelCases.arbCase

let private onWakeups =
    concurrent
        ConcurrentScenarios.Wakeup
        (function
        | ConcurrentScenarios.Wakeup c -> Some c
        | _ -> None)
        "map or wait (mapOrWait), write and unmap"
        WakeupWorkload.arbCase

let private onQueues =
    concurrent
        ConcurrentScenarios.Queues
        (function
        | ConcurrentScenarios.Queues c -> Some c
        | _ -> None)
        "serve their own queues (serveQueue)"
        ParallelVirtqueues.arbCase

/// Rule ids in parentheses (B72-1, BM-1, UM-2, C2, U72-3, UM-4) are headings in docs/qemu-rules.md.
let private concurrencyEntries: Entry list =
    [ { Number = 20
        Name = "linearizability"
        Title = "Concurrent map/unmap/map-client histories are explained by one sequential order of the model (Wing-Gong)"
        Rules =
          [ "softmmu/physmem.c:address_space_map (qatomic_xchg bounce.in_use)"
            "system/physmem.c:address_space_map (qatomic_cmpxchg bounce_buffer_size)"
            "softmmu/physmem.c:cpu_register_map_client (map_client_list_lock)" ]
        Broken = fun _ -> [ Variant.Of Fault.NonAtomicBounceClaim ]
        Requires = Capabilities.InProcessInstances
        Judging = onCommands ConcurrencyProperties.linearizability }
      { Number = 21
        Name = "bounce-budget"
        Title = "At every observed instant bounce bytes in use stay within the limit (Qemu72: one page, one buffer; Qemu92: the AS budget)"
        Rules =
          [ "softmmu/physmem.c:address_space_map (B72-1, B72-2)"
            "system/physmem.c:address_space_map (BM-1)"
            "system/physmem.c:address_space_unmap (UM-2)" ]
        Broken =
          fun p ->
              [ yield Variant.Of Fault.NonAtomicBounceClaim
                if p = Profile.Qemu92 then
                    yield Variant.Of Fault.DoubleBudgetRelease ]
        Requires = Capabilities.InProcessInstances
        Judging = onCommands ConcurrencyProperties.bounceBudget }
      { Number = 22
        Name = "no-lost-wakeup"
        Title = "Devices that fail a map and register a client are always woken; retry loops always finish"
        Rules =
          [ "softmmu/physmem.c:cpu_register_map_client (C2)"
            "softmmu/physmem.c:address_space_unmap (U72-3: release, then notify)"
            "system/physmem.c:address_space_unmap (UM-4)"
            "softmmu/dma-helpers.c:dma_blk_cb" ]
        Broken = fun _ -> [ Variant.Of Fault.NotifyBeforeRelease; Variant.Of Fault.UnlockedClientList ]
        Requires = Capabilities.InProcessInstances
        Judging = onWakeups ConcurrencyProperties.noLostWakeup }
      { Number = 23
        Name = "balance-under-contention"
        Title = "After the threads finish, refcounts, dirty bits and memory are those of the linearization"
        Rules =
          [ "softmmu/memory.c:memory_region_ref (object_ref: qatomic_inc)"
            "softmmu/physmem.c:invalidate_and_set_dirty"
            "softmmu/physmem.c:address_space_unmap" ]
        Broken = fun _ -> [ Variant.Of Fault.NonAtomicRef ]
        Requires = Capabilities.InProcessInstances
        Judging = onCommands ConcurrencyProperties.balanceUnderContention }
      { Number = 24
        Name = "parallel-virtqueues"
        Title = "Devices popping and pushing MMIO-backed chains in parallel conserve elements and leave no mapping behind"
        Rules =
          [ "hw/virtio/virtio.c:virtqueue_map_desc"
            "hw/virtio/virtio.c:virtqueue_undo_map_desc"
            "hw/virtio/virtio.c:virtqueue_push"
            "VIRTIO 1.2 §2.7.8" ]
        Broken = fun _ -> [ Variant.Of Conformance.Model.Virtio.VirtioFault.NoUndoOnError ]
        Requires = Capabilities.InProcessInstances
        Judging = onQueues ParallelVirtqueues.parallelQueues } ]

/// The whole catalogue, in number order.
let all: Entry list =
    dmaEntries @ virtioEntries @ concurrencyEntries @ differentialEntries
    |> List.sortBy (fun e -> e.Number)

let find (name: string) =
    all
    |> List.tryFind (fun e -> e.Name = name || string e.Number = name || sprintf "P%d" e.Number = name)

/// Judges one scenario with a property on `target`; a property comparing targets (P26) compares it with
/// `reference`. A concurrency property needs an in-process target and a scenario with threads, and a
/// sequential one a scenario without (both refused with an ArgumentException).
let judgeScenario (entry: Entry) (target: ITarget) (reference: ITarget) (scenario: Scenario) =
    match entry.Judging with
    | OnConcurrentCases(judge, _) ->
        match target with
        | :? IInProcessTarget as t when scenario.IsConcurrent -> judge t scenario
        | _ when scenario.IsConcurrent ->
            invalidArg "target" (sprintf "P%d %s runs in-process instances of a target, which the %s cannot make" entry.Number entry.Name target.Name)
        | _ -> invalidArg "scenario" (sprintf "P%d %s judges scenarios with threads (concurrency cases)" entry.Number entry.Name)
    | _ when scenario.IsConcurrent -> invalidArg "scenario" (sprintf "P%d %s judges sequential scenarios; threads are for P20-P24" entry.Number entry.Name)
    | OnScenarios(judge, _) -> judge target scenario
    | AgainstReference(judge, _) -> judge target reference scenario
