/// The differential check against real QEMU: virtio-blk requests run on a QEMU (legacy or modern
/// virtio-blk-pci over qtest, one reused process per transport and bounce budget) and on the model over
/// the layout that very process prints, with the queue size its device reports and the profile its version
/// implies, and every difference between the two observations in words. Used by the `Qemu` test category
/// and by `conformance check --target qemu`.
module Conformance.Qemu.Differential.QemuDifferential

open System
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Model.Targets
open Conformance.Qemu
open Conformance.Targets.Qemu
open Conformance.Properties

let Mmio = 0xff000000UL // pc-testdev-iomem, 64 KiB of plain storage behind MMIO callbacks
let Rom = 0xfffe0000UL // pc.bios, distinctive bytes from here on
let Header, Data, Status = 0x200000UL, 0x300000UL, 0x280000UL
let W, N = VirtioConstants.DescFlagWrite, VirtioConstants.DescFlagNext

/// The committed q35 layout of QEMU 7.2 (fixtures/layouts), for model-only checks of QEMU's observations.
let q35 =
    lazy
        (let dir = IO.Path.Combine(Settings.root (), "fixtures", "layouts")
         MtreeDump.Parse(IO.File.ReadAllText(IO.Path.Combine(dir, "qemu-7.2", "q35.mtree-D.txt")), "qemu-7.2/q35.mtree-D.txt"))

/// The used ring of a model run: its index and the elements the run published.
let used (run: ScenarioRun) =
    run.Virtio.Driver.UsedIdx(),
    (run.Steps
     |> Seq.choose (fun s -> Option.ofObj s.Virtio)
     |> Seq.collect (fun v -> v.NewUsed)
     |> List.ofSeq)

let read (run: ScenarioRun) (addr: uint64) (n: int) =
    let b = Array.zeroCreate<byte> n in
    run.System.Read(run.System.Space "memory", addr, Span b)
    b

/// What the guest does on both sides: the 16-byte header written at Header, other guest writes, the given
/// descriptor table (index, addr, len, flags, next), the heads published (one kick for all), completion;
/// then the used ring, the broken flag and the bytes at each of `Look`.
type Request =
    {
        Header: byte[]
        Descriptors: (int * uint64 * uint32 * uint16 * uint16) list
        Before: (uint64 * byte[]) list
        Look: (uint64 * int) list
        Heads: uint16 list
        /// How many heads each kick publishes, each kick once the previous one's requests completed ([]: one kick for all).
        Kicks: int list
        /// Each kick follows the previous one without waiting: its requests are still in flight.
        KicksInFlight: bool
        /// Where queue 0's rings are (descriptor table, available ring, used ring); None: where the driver puts them by default.
        Rings: (uint64 * uint64 * uint64) option
    }

/// One request with head 0.
let single (header: byte[]) descriptors before look =
    { Header = header
      Descriptors = descriptors
      Before = before
      Look = look
      Heads = [ 0us ]
      Kicks = []
      KicksInFlight = false
      Rings = None }

/// Whether the guest can read back what the device writes at an address: RAM (64 MiB) or pc-testdev's MMIO.
let guestReadable (addr: uint64) =
    addr < 0x4000000UL || (addr >= Mmio && addr < Mmio + 0x10000UL)

/// A virtio-blk request header: type, sector.
let header (typ: uint32) (sector: uint64) =
    let h = Array.zeroCreate<byte> 16
    BitConverter.TryWriteBytes(Span(h, 0, 4), typ) |> ignore
    BitConverter.TryWriteBytes(Span(h, 8, 8), sector) |> ignore
    h

/// What both sides are compared on. Unspecified: the model wrote back bounce bytes nobody produced
/// (QEMU 7.2 writes heap garbage there, F-BLK-2), so bytes in bounced buffers cannot be compared.
/// NeedsReset: on the modern transport, whether device_status carries DEVICE_NEEDS_RESET (None elsewhere).
/// Queue: last_avail_idx, used_idx and inuse of queue 0 (QMP x-query-virtio-queue-status / the model's VirtQueue).
type Outcome =
    {
        UsedList: (uint32 * uint32) list
        IsBroken: bool
        Bytes: byte[] list
        Errors: string
        Unspecified: bool
        NeedsReset: bool option
        Queue: uint16 * uint16 * int
        /// The disk afterwards, where the case may have written it (None: not looked at).
        Disk: byte[] option
    }

/// The same request as a case for a reused QEMU (VirtioBlkSession).
let toCase (r: Request) =
    BlkRequestCase(
        [| yield GuestWrite(Header, r.Header)
           for (a, b) in r.Before -> GuestWrite(a, b) |],
        [| for (i, a, l, f, n) in r.Descriptors -> struct (i, VringDesc(a, l, f, n)) |],
        [| for (a, l) in r.Look -> GuestRange(a, l) |],
        // an OUT request, or guest writes that could hold another header, may change the disk
        BitConverter.ToUInt32(r.Header, 0) = 1u || not r.Before.IsEmpty,
        Array.ofList r.Heads,
        (match r.Rings with
         | Some(d, a, u) -> Nullable(RingAddresses(d, a, u))
         | None -> Nullable()),
        (match r.Rings with
         | Some(_, _, u) -> guestReadable u
         | None -> true),
        (if r.Kicks.IsEmpty then null else Array.ofList r.Kicks),
        not r.KicksInFlight
    )

/// QEMU's BIOS image as the guest sees it at 0xfffc0000 (256 KiB), read once per binary, so ROM buffers
/// hold the same bytes on both sides.
let romImageOf =
    let images = Collections.Concurrent.ConcurrentDictionary<string, byte[]>()

    fun (binary: QemuBinary) ->
        images.GetOrAdd(
            binary.Path,
            fun _ ->
                use q = new QemuProcess(binary, VirtioContext.InitialDisk 16)
                q.Qtest.Read(0xfffc0000UL, 0x40000)
        )

/// The device's own DMA address space in QEMU's layout (QemuMachine.DeviceSpace).
let DeviceSpace = QemuMachine.DeviceSpace

/// What the model side of a comparison runs on: a layout, a profile, the device's address space and
/// where the driver put a queue of which size.
type ModelSide =
    {
        Layout: LayoutSpec
        LayoutSource: string
        Profile: Profile
        Space: string
        QueueSize: int
        Rings: uint64 * uint64 * uint64
        /// The files the layout was read from, for scenario files to name instead of inlining it.
        LayoutFrom: LayoutReference option
    }

/// Where the layouts QEMU processes printed are kept (QemuMachine.LayoutCache).
let layoutCache () = QemuMachine.LayoutCache

/// One QEMU configuration under test (binary, transport, bounce budget) as a target, and the model's
/// picture of its machine (QemuMachine: its `info mtree -D` once the driver has set the device up, settled
/// by its `info mtree -f`; the queue size its device reports; the bounce budget of the device's address
/// space) with the profile its version implies: the two targets of a comparison.
type Target =
    { Qemu: QemuTarget
      Binary: QemuBinary
      Model: ModelSide }

let targetOf (binary: QemuBinary) (profile: Profile) (qemu: QemuTarget) : Target =
    let m = qemu.QemuMachine

    { Qemu = qemu
      Binary = binary
      Model =
        { Layout = m.Layout
          LayoutSource = m.Source
          Profile = profile
          Space = m.Space
          QueueSize = m.QueueSize
          Rings = m.Rings.Desc, m.Rings.Avail, m.Rings.Used
          LayoutFrom = Option.ofObj m.LayoutFrom } }

/// The scenario operations of a request for a device in `space` with a queue of `queueSize` whose rings
/// are `defaultRings` unless the request places them.
let requestOps (space: string) (queueSize: int) (defaultRings: uint64 * uint64 * uint64) (r: Request) : ScenarioOp list =
    let desc, avail, usedRing = r.Rings |> Option.defaultValue defaultRings

    [ VirtioSetupOp(space, queueSize, desc, avail, usedRing, false, false, false, 2048, "") :> ScenarioOp
      WriteOp("memory", Header, r.Header)
      yield! r.Before |> List.map (fun (a, b) -> WriteOp("memory", a, b) :> ScenarioOp)
      DescriptorsOp(
          Nullable(),
          r.Descriptors
          |> List.map (fun (i, a, l, f, n) -> DescriptorEntry(i, a, l, f, n))
          |> Array.ofList
      )
      // each kick's heads, the kick, and its requests completed before the next (in flight: only after the last)
      let kicks = if r.Kicks.IsEmpty then [ r.Heads.Length ] else r.Kicks
      let starts = List.scan (+) 0 kicks

      for (start, count) in List.zip (List.take kicks.Length starts) kicks do
          PublishOp(r.Heads |> List.skip start |> List.take count |> Array.ofList)
          KickOp()

          if not r.KicksInFlight then
              CompleteIoOp()

      if r.KicksInFlight then
          CompleteIoOp() ]

/// The model side with the device's address space given `budget` bytes of bounce space instead (for printed
/// scenarios too: a fresh QEMU with that x-max-bounce-buffer-size runs the same).
let withBudget (side: ModelSide) (budget: uint64) =
    let spaces =
        side.Layout.AddressSpaces
        |> Seq.map (fun a ->
            if a.Name = side.Space then
                AddressSpaceSpec(a.Name, a.Root, budget, a.RootIndex)
            else
                a)
        |> Array.ofSeq

    { side with
        Layout = LayoutSpec(side.Layout.Regions, spaces, side.Layout.Dirty)
        LayoutFrom =
            side.LayoutFrom
            |> Option.map (fun r ->
                let budgets = Collections.Generic.Dictionary<string, uint64>(r.MaxBounceBufferSizes)
                budgets.[side.Space] <- budget
                LayoutReference(r.Mtree, r.Flat, budgets)) }

/// The request as the scenario both targets run: the device set up as `side` says, the guest's writes,
/// descriptors, publish-kick groups and completion.
let requestScenario (side: ModelSide) (r: Request) =
    Scenario(side.Profile, side.Layout, Array.ofList (requestOps side.Space side.QueueSize side.Rings r), LayoutFrom = Option.toObj side.LayoutFrom)

/// What a target did with a request, as the comparison sees it: its observation (with the used ring as the
/// guest reads it back, from ROM or unassigned space: whatever is there), then the device-writable buffers
/// read back by the guest through the same session. A QEMU that died or hung shows as error lines the
/// model never has.
let private outcomeOf (session: ITargetSession) (r: Request) (needsReset: bool) =
    let obs = session.Observe()

    let read (addr: uint64) (n: int) =
        match session.Apply(ReadOp("memory", addr, uint64 n)).BytesRead with
        | null -> Array.zeroCreate<byte> 0
        | b -> b

    let v = obs.Virtio

    { UsedList =
        if isNull v then
            []
        else
            v.Used |> Seq.map (fun struct (i, l) -> i, l) |> List.ofSeq
      IsBroken = not (isNull v) && v.Broken
      Bytes = r.Look |> List.map (fun (a, l) -> read a l)
      Errors = if isNull v then "" else String.Join("\n", v.Errors)
      Unspecified = obs.Memory.UnproducedBytesWrittenBack > 0L
      NeedsReset =
        if needsReset && not (isNull v) then
            Some(v.Status &&& 0x40uy <> 0uy)
        else
            None
      Queue =
        (if isNull v then
             (0us, 0us, 0)
         else
             (v.LastAvailIdx, v.UsedIdx, v.InUse))
      Disk = if isNull v || v.Disk.Length = 0 then None else Some v.Disk },
    obs

/// Runs the request's scenario on a target and reads its outcome back.
let private runOn (session: ITargetSession) (scenario: Scenario) r needsReset =
    use session = session

    for op in scenario.Ops do
        session.Apply op |> ignore

    outcomeOf session r needsReset

/// Whether a request may change the disk: an OUT request, or guest writes that could hold another header.
let mayWriteDisk (r: Request) =
    BitConverter.ToUInt32(r.Header, 0) = 1u || not r.Before.IsEmpty

/// The request on QEMU (the target's reused process), on the layout `side` describes.
let requestOnQemu (target: Target) (side: ModelSide) (r: Request) =
    let scenario = requestScenario side r

    fst (runOn (target.Qemu.Open(side.Profile, side.Layout, mayWriteDisk r)) scenario r (target.Qemu.Transport = VirtioTransport.Modern))

/// The reference model, or a broken variant of it, as the other target: QEMU's BIOS image (`rom`) in
/// pc.bios, where requests may read ROM.
let modelTarget (fault: Fault) (rom: byte[] option) =
    let images = Collections.Generic.Dictionary<string, byte[]>()
    rom |> Option.iter (fun image -> images.["pc.bios"] <- image)
    ModelTarget(Variant.Of fault, images)

/// The model side, on `side`; `rom` is QEMU's BIOS image, where the request reads ROM. Also the model's
/// observation (its trace, what its failed pops kept).
let requestOnModelWith (fault: Fault) (side: ModelSide) (rom: byte[] option) (r: Request) =
    let target = modelTarget fault rom
    let scenario = requestScenario side r
    runOn (target.Open(side.Profile, side.Layout)) scenario r false

let requestOnModel side rom r =
    requestOnModelWith Fault.None side rom r

/// One request on a fresh QEMU (a process of one case) and on the model's picture of that QEMU.
let bothOnFresh (binary: QemuBinary) (transport: VirtioTransport) (r: Request) =
    use qemu = new QemuTarget(binary, transport)
    let target = targetOf binary binary.Profile qemu
    let real = requestOnQemu target target.Model r
    let model, run = requestOnModel target.Model (Some(romImageOf binary)) r
    real, model, run

/// Whether the model bounces an access at `a` in "memory" on `layout` (its first region is not directly
/// mapped for a write): where F-BLK-2's never-produced bytes can appear. Views are rendered once per layout.
let private bouncedIn =
    let views =
        Runtime.CompilerServices.ConditionalWeakTable<LayoutSpec, MemorySystem>()

    fun (layout: LayoutSpec) (a: uint64) ->
        let system = views.GetValue(layout, fun l -> MemorySystem(l, Profile.Qemu72))
        not (system.Space("memory").View.Translate(a).Region.IsDirect true)

/// Every difference between QEMU's outcome and the model's, in words (empty: they agree). Where the
/// model wrote back bounce bytes nobody produced, those buffers are compared only when KD-1 (F-BLK-2) is
/// not registered for this QEMU's release (`kd1`).
let differencesWith (kd1: bool) (r: Request) (real: Outcome) (model: Outcome) (run: Observation) =
    let bounced = bouncedIn run.Scenario.Layout
    // several requests of one kick complete in whatever order the block layer finishes them
    [ if List.sort real.UsedList <> List.sort model.UsedList then
          sprintf "used ring: QEMU %A, model %A" real.UsedList model.UsedList
      if real.IsBroken <> model.IsBroken then
          sprintf "broken: QEMU %b, model %b" real.IsBroken model.IsBroken
      if real.Queue <> model.Queue then
          let (a1, u1, i1), (a2, u2, i2) = real.Queue, model.Queue
          sprintf "queue 0 (last_avail_idx, used_idx, inuse): QEMU (%d, %d, %d), model (%d, %d, %d)" a1 u1 i1 a2 u2 i2
      match real.NeedsReset with
      | Some needsReset when needsReset <> model.IsBroken ->
          sprintf "DEVICE_NEEDS_RESET: QEMU %b, but the model's device is %s" needsReset (if model.IsBroken then "broken" else "working")
      | _ -> ()
      for ((a, _), (q, m)) in List.zip r.Look (List.zip real.Bytes model.Bytes) do
          if q <> m && not (kd1 && model.Unspecified && bounced a) then
              sprintf "bytes at 0x%x differ: QEMU %s, model %s" a (ScenarioTrace.Hex q) (ScenarioTrace.Hex m)
      match real.Disk, model.Disk with
      | Some q, Some m when q <> m ->
          let sectors =
              [ for s in 0 .. min q.Length m.Length / 512 - 1 do
                    if not (ReadOnlySpan(q, s * 512, 512).SequenceEqual(ReadOnlySpan(m, s * 512, 512))) then
                        yield s ]

          sprintf "disk image differs (%d vs %d bytes) in sectors %A" q.Length m.Length (sectors |> List.truncate 8)
      | _ -> ()
      for e in model.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries) do
          if not (real.Errors.Contains e) then
              sprintf "the model reports \"%s\"; QEMU printed: %s" e (real.Errors.Trim()) ]

/// The differences on a QEMU of the given version (KD-1 as registered for its release).
let differences (version: Version) r real model run =
    differencesWith (KnownDeviations.appliesTo (KnownDeviations.load ()) "F-BLK-2" version) r real model run

let private places =
    [| 0x300000UL, "RAM"
       0x3ffff00UL, "RAM end"
       Mmio + 0x100UL, "MMIO"
       Mmio + 0xff00UL, "MMIO end"
       Rom + 0x1000UL, "ROM"
       0x10000000UL, "unassigned"
       0xffffffffffffff00UL, "64-bit end" |]

/// How a generated chain is malformed (the malformed chains of the virtqueue issue), if it is.
type Malformation =
    | WellFormed
    /// the last data descriptor points back at the first: "Looped descriptor" (or bounce exhaustion first)
    | Loop
    /// a device-readable descriptor after the device-writable data: "Incorrect order for descriptors"
    | ReadableAfterWritable
    /// the header's next index is 44 past the end of the queue: "Desc next is N"
    | NextOutOfRange
    /// a zero-length data descriptor: "zero sized buffers are not allowed"
    | ZeroLength

/// One generated request: type, sector, data pieces (place index, length), where its status byte goes,
/// and whether its chain is malformed.
/// With `Indirect`, the whole chain lives in an indirect table in RAM and the ring holds one descriptor
/// pointing at it (QEMU and the model accept VRING_DESC_F_INDIRECT on the head whatever was negotiated).
/// `TableInMmio`: the table is in pc-testdev's MMIO, `TableAcrossMmioEnd`: it runs past MMIO's end into
/// unassigned space (its region cache is cut there: "Cannot map indirect buffer").
type RequestSpec =
    { Type: uint32
      Sector: uint64
      Pieces: (int * uint32) list
      StatusInMmio: bool
      Malformed: Malformation
      Indirect: bool
      TableAt: TablePlace }

and TablePlace =
    | TableInRam
    | TableInMmio
    | TableAcrossMmioEnd

/// Where a case puts a ring: in RAM, in pc-testdev's MMIO (QEMU reaches it through a region cache without a
/// host pointer: the slow path), in ROM (the device's writes are dropped, the guest reads BIOS bytes) or in
/// unassigned space (reads zero, writes dropped).
type RingPlace =
    | RingInRam
    | RingInMmio
    | RingInRom
    | RingInUnassigned

/// Where each of queue 0's rings goes. The legacy transport takes one page frame for all three (RAM or
/// MMIO); the modern transport places each: the available ring where the guest can write it (RAM, MMIO),
/// the descriptor table also in unassigned space (the device reads zeros: a zero-length descriptor), the
/// used ring anywhere. (Not in ROM: the device would follow BIOS bytes as descriptors anywhere in RAM.)
and RingSpec =
    { DescIn: RingPlace
      AvailIn: RingPlace
      UsedIn: RingPlace }

let RingsInRam =
    { DescIn = RingInRam
      AvailIn = RingInRam
      UsedIn = RingInRam }

/// Where rings in a place start: each ring at its legacy-layout offset from there.
let ringBase =
    function
    | RingInRam -> VirtioBlkSession.RingBase
    | RingInMmio -> Mmio + 0x8000UL
    | RingInRom -> Rom
    | RingInUnassigned -> 0x20000000UL

/// The three ring addresses of a placement for a queue of `queueSize`.
let ringAddresses (queueSize: int) (r: RingSpec) =
    ringBase r.DescIn, VirtioBlkDriver.LegacyAvail(ringBase r.AvailIn, queueSize), VirtioBlkDriver.LegacyUsed(ringBase r.UsedIn, queueSize)

/// A generated case: 1-4 requests published before one kick, on one transport, with the device's
/// bounce budget (x-max-bounce-buffer-size with iommu_platform=on, modern transport only; None: the
/// device DMAs through "memory" with QEMU's default budget, all there is before 9.1). Shrinking
/// works on this description with QEMU in the loop: fewer requests and pieces, shorter pieces, RAM instead
/// of other places, plain reads, the default budget, the legacy transport.
type CaseSpec =
    {
        Transport: VirtioTransport
        Budget: uint64 option
        Rings: RingSpec
        Kicks: int list
        /// The kicks follow each other without waiting for completion (only where the outcome cannot depend on
        /// when QEMU's block layer completes: see `inFlightIsDeterministic`).
        InFlight: bool
        Requests: RequestSpec list
    }

/// The guest's memory and descriptor table for a case: request k's header at Header + 0x40k, its status
/// at Status + 0x10k (or in MMIO), its data at the next free offset of each place, its descriptors
/// numbered on from the previous request's (in a queue of `queueSize`).
let build (queueSize: int) (c: CaseSpec) : string * VirtioTransport * Request =
    let offsets = Collections.Generic.Dictionary<int, uint64>()
    let mutable next = 0
    let descriptors = ResizeArray()
    let before = ResizeArray()
    let look = ResizeArray()
    let heads = ResizeArray()

    for k, r in List.indexed c.Requests do
        let headerAt = Header + uint64 (0x40 * k)

        if k > 0 then
            before.Add((headerAt, header r.Type r.Sector))

        let statusAt =
            (if r.StatusInMmio then Mmio + 0x7f00UL else Status) + uint64 (0x10 * k)

        let data =
            [ for (place, len) in r.Pieces ->
                  let off =
                      match offsets.TryGetValue place with
                      | true, o -> o
                      | _ -> 0UL

                  offsets.[place] <- off + uint64 len + 0x10UL
                  fst places.[place] + off, len ]

        let flags = if r.Type = 1u then N else W ||| N
        // the chain with indices local to where it lives (the ring from `next` on, or an indirect table)
        let data =
            if r.Malformed = ZeroLength then
                data @ [ fst places.[0] + 0x8000UL + uint64 (0x100 * k), 0u ]
            else
                data

        let chain =
            [ yield headerAt, 16u, N, (if r.Malformed = NextOutOfRange then -1 else 1)
              for i, (addr, len) in List.indexed data do
                  let last = i = data.Length - 1
                  yield addr, len, flags, (if r.Malformed = Loop && last then 1 else i + 2)
              if r.Malformed = ReadableAfterWritable then
                  yield Data + 0x9000UL + uint64 (0x100 * k), 16u, N, data.Length + 2
              yield statusAt, 1u, W, 0 ]

        heads.Add(uint16 next)

        if r.Indirect then
            let table =
                match r.TableAt with
                | TableInRam -> Data + 0x80000UL + uint64 (0x400 * k)
                | TableInMmio -> Mmio + 0x6000UL + uint64 (0x200 * k)
                | TableAcrossMmioEnd -> Mmio + 0x10000UL - 0x20UL - uint64 (0x1000 * k)

            let bytes = Array.zeroCreate<byte> (16 * chain.Length)

            chain
            |> List.iteri (fun i (a, l, f, n) -> VringDesc(a, l, f, (if n = -1 then uint16 (queueSize + 44) else uint16 n)).Encode(Span(bytes, 16 * i, 16)))

            before.Add((table, bytes))
            descriptors.Add((next, table, uint32 bytes.Length, VirtioConstants.DescFlagIndirect, 0us))
            next <- next + 1
        else
            let start = next

            for (a, l, f, n) in chain do
                descriptors.Add(
                    (next,
                     a,
                     l,
                     f,
                     (if n = -1 then
                          uint16 (queueSize + 44)
                      else
                          uint16 (start + n)))
                )

                next <- next + 1

        look.Add((statusAt, 1))

        for (addr, len) in data do
            if len > 0u then
                look.Add((addr, int (min len 16384u))) // whole buffers: the session clears what a case reads back

    let describe (r: RequestSpec) =
        sprintf
            "type %d sector %d [%s]%s%s%s"
            r.Type
            r.Sector
            (String.Join(", ", r.Pieces |> List.map (fun (p, l) -> sprintf "%s %d" (snd places.[p]) l)))
            (if r.StatusInMmio then " status in MMIO" else "")
            (if r.Malformed = WellFormed then
                 ""
             else
                 sprintf " malformed: %A" r.Malformed)
            (if r.Indirect then
                 sprintf
                     " indirect%s"
                     (match r.TableAt with
                      | TableInRam -> ""
                      | TableInMmio -> " (table in MMIO)"
                      | TableAcrossMmioEnd -> " (table across MMIO's end)")
             else
                 "")

    let budget =
        match c.Budget with
        | Some b -> sprintf ", bounce budget %d" b
        | None -> ""

    let rings =
        if c.Rings = RingsInRam then
            ""
        else
            sprintf ", rings: descriptors %A, available %A, used %A" c.Rings.DescIn c.Rings.AvailIn c.Rings.UsedIn

    let kicks =
        if c.Kicks.IsEmpty then
            ""
        else
            sprintf ", kicks of %s requests%s" (String.Join("+", c.Kicks)) (if c.InFlight then " in flight" else "")

    let label =
        sprintf "%A%s%s%s: %s" c.Transport budget rings kicks (String.Join("; ", c.Requests |> List.map describe))

    let first = c.Requests.Head

    label,
    c.Transport,
    { Header = header first.Type first.Sector
      Descriptors = List.ofSeq descriptors
      Before = List.ofSeq before
      Look = List.ofSeq look
      Heads = List.ofSeq heads
      Rings =
        if c.Rings = RingsInRam then
            None
        else
            Some(ringAddresses queueSize c.Rings)
      Kicks = c.Kicks
      KicksInFlight = c.InFlight && not c.Kicks.IsEmpty }

let private genRequest =
    gen {
        let! typ =
            Gen.frequency
                [ 4, Gen.constant 0u
                  3, Gen.constant 1u
                  1, Gen.constant 4u
                  1, Gen.constant 8u
                  1, Gen.constant 6u ]

        let! n = Gen.choose (1, 3)

        let! pieces =
            Gen.listOfLength
                n
                (Gen.zip
                    (Gen.frequency [ 6, Gen.constant 0; 4, Gen.choose (0, places.Length - 1) ])
                    (Gen.frequency
                        [ 3, Gen.elements [ 1u; 16u; 511u; 512u; 513u ]
                          2, Gen.elements [ 4095u; 4096u; 4097u; 8192u ]
                          1, Gen.choose (1, 9000) |> Gen.map uint32 ]))

        let! sector = Gen.frequency [ 4, Gen.constant 1UL; 1, Gen.constant 2047UL; 1, Gen.constant 5000UL ]
        let! statusInMmio = Gen.elements [ false; true ]

        let! malformed =
            Gen.frequency
                [ 12, Gen.constant WellFormed
                  1, Gen.elements [ Loop; ReadableAfterWritable; NextOutOfRange; ZeroLength ] ]

        let! indirect = Gen.frequency [ 4, Gen.constant false; 1, Gen.constant true ]

        let! tableAt =
            Gen.frequency
                [ 4, Gen.constant TableInRam
                  1, Gen.constant TableInMmio
                  1, Gen.constant TableAcrossMmioEnd ]

        return
            { Type = typ
              Sector = sector
              Pieces = pieces
              StatusInMmio = statusInMmio
              Malformed = malformed
              Indirect = indirect
              TableAt = if indirect then tableAt else TableInRam }
    }

/// Whether kicking each group of requests while the earlier groups are still in flight has one outcome
/// whenever QEMU's block layer completes them. It has when every request after the first group stays in
/// RAM and is well formed: it then takes no bounce space the first group may still hold (or have freed),
/// and cannot break the device, which would stop the first group's completions from being published
/// (hw/virtio/virtio.c:virtqueue_flush only counts them on a broken device: PUSH-1 in docs/qemu-rules.md).
let inFlightIsDeterministic (kicks: int list) (requests: RequestSpec list) =
    let plain (r: RequestSpec) =
        r.Malformed = WellFormed
        && not r.StatusInMmio
        && r.TableAt = TableInRam
        && r.Pieces |> List.forall (fun (place, _) -> place = 0)

    match kicks with
    | first :: _ :: _ -> requests |> List.skip first |> List.forall plain
    | _ -> false

/// The disk sectors a request may touch, [first, end): only IN and OUT requests reach the data, over their
/// whole data length (counted whether or not the device accepts the request).
let private sectorsOf (r: RequestSpec) =
    let bytes = r.Pieces |> List.sumBy (fun (_, l) -> uint64 l)

    if (r.Type = 0u || r.Type = 1u) && bytes > 0UL then
        Some(r.Sector, r.Sector + (bytes + 511UL) / 512UL)
    else
        None

/// Whether two requests of a case may be in flight at once: kicked together, or in kicks that do not wait.
let private concurrent (kicks: int list) (inFlight: bool) (i: int) (j: int) =
    let groupOf k =
        kicks |> List.scan (+) 0 |> List.tail |> List.findIndex (fun ends -> k < ends)

    inFlight || kicks.IsEmpty || groupOf i = groupOf j

/// Whether an OUT request may be in flight together with another request on the same sectors. QEMU hands
/// the requests of a kick to its block layer together, and that completes them in any order (a thread
/// pool): what the disk holds and what a read returns would then depend on it, so such cases are not
/// generated (an OUT then an IN of the same sectors in kicks that wait is still generated: that order is
/// the driver's).
let racingWrites (kicks: int list) (inFlight: bool) (requests: RequestSpec list) =
    let indexed = List.indexed requests

    indexed
    |> List.exists (fun (i, a) ->
        indexed
        |> List.exists (fun (j, b) ->
            i < j
            && (a.Type = 1u || b.Type = 1u)
            && concurrent kicks inFlight i j
            && match sectorsOf a, sectorsOf b with
               | Some(a0, a1), Some(b0, b1) -> a0 < b1 && b0 < a1
               | _ -> false))

/// Moves each request that would race with an earlier one (`racingWrites`) to sectors of its own:
/// 1024 + 128k for request k, beyond the sectors 1 to 54 that the other requests can reach from sector 1
/// (three pieces of at most 9000 bytes) and before the disk's last sector, 2047.
let separateWrites (kicks: int list) (inFlight: bool) (requests: RequestSpec list) =
    requests
    |> List.fold
        (fun (acc: RequestSpec list) r ->
            let k = acc.Length

            if racingWrites kicks inFlight (acc @ [ r ]) then
                acc
                @ [ { r with
                        Sector = 1024UL + 128UL * uint64 k } ]
            else
                acc @ [ r ])
        []

/// The room for data in pc-testdev's MMIO: `build` lays the pieces placed in "MMIO" out one after another from
/// MMIO + 0x100, and indirect tables (+0x6000), status bytes (+0x7f00) and rings (+0x8000) follow.
let MmioDataRoom = 0x5f00UL

/// Keeps the data placed in "MMIO" within `MmioDataRoom`: a piece that would reach the tables, status bytes
/// or rings of other requests goes to unassigned space instead (still bounced, and stateless), so that no
/// request in flight writes over what another reads or writes, whose order would then decide the bytes.
let keepMmioDataClear (requests: RequestSpec list) =
    let mmio, unassigned = 2, 5

    requests
    |> List.mapFold
        (fun (used: uint64) (r: RequestSpec) ->
            let pieces, used =
                r.Pieces
                |> List.mapFold
                    (fun (used: uint64) (place, len) ->
                        if place <> mmio then
                            (place, len), used
                        elif used + uint64 len > MmioDataRoom then
                            (unassigned, len), used
                        else
                            (place, len), used + uint64 len + 0x10UL)
                    used

            { r with Pieces = pieces }, used)
        0UL
    |> fst

/// A request made plain in the sense of `inFlightIsDeterministic`: its buffers and status in RAM, its
/// table (if any) in RAM, well formed; type, sector, lengths and indirection kept.
let plainRequest (r: RequestSpec) =
    { r with
        Malformed = WellFormed
        StatusInMmio = false
        TableAt = TableInRam
        Pieces = r.Pieces |> List.map (fun (_, len) -> 0, len) }

/// Bounce budgets a case may give the device (x-max-bounce-buffer-size): one byte under and over the
/// bounced sizes the requests draw (512, 4096), a page and a half, 64 KiB and 1 MiB.
let Budgets = [ 511UL; 513UL; 4095UL; 4097UL; 8192UL; 65536UL; 1048576UL ]

/// Cases on the given transports for a QEMU whose device takes the bounce budgets `budgets` (empty: only
/// its default), with rings outside RAM where `ringsOutsideRam` (not where KD-3 applies).
let genSpecWith (transports: VirtioTransport list) (budgets: uint64 list) (ringsOutsideRam: bool) =
    gen {
        let! transport = Gen.elements transports

        let! budget =
            if budgets.IsEmpty || transport = VirtioTransport.Legacy then
                Gen.constant None
            else
                Gen.frequency [ 1, Gen.constant None; 3, Gen.elements budgets |> Gen.map Some ]

        let! rings =
            if not ringsOutsideRam then
                Gen.constant RingsInRam
            elif transport = VirtioTransport.Legacy then
                Gen.frequency
                    [ 6, Gen.constant RingsInRam
                      1,
                      Gen.constant
                          { DescIn = RingInMmio
                            AvailIn = RingInMmio
                            UsedIn = RingInMmio } ]
            else
                Gen.frequency
                    [ 6, Gen.constant RingsInRam
                      3,
                      gen {
                          let! d = Gen.elements [ RingInRam; RingInUnassigned; RingInMmio ]
                          let! a = Gen.elements [ RingInRam; RingInMmio ]
                          let! u = Gen.elements [ RingInRam; RingInRom; RingInUnassigned; RingInMmio ]
                          return { DescIn = d; AvailIn = a; UsedIn = u }
                      } ]

        let! count = Gen.frequency [ 3, Gen.constant 1; 2, Gen.choose (2, 4) ]
        let! requests = Gen.listOfLength count genRequest
        // KD-3: where region caches outside RAM are read at the wrong address, tables stay in RAM too
        let requests =
            if ringsOutsideRam then
                requests
            else
                requests |> List.map (fun r -> { r with TableAt = TableInRam })
        // several kicks: the requests split into groups, each kicked once the previous group completed
        let! kicks =
            if count < 2 then
                Gen.constant []
            else
                Gen.frequency
                    [ 1, Gen.constant []
                      1,
                      Gen.listOfLength (count - 1) (Gen.elements [ false; true ])
                      |> Gen.map (fun cuts ->
                          let sizes =
                              (cuts @ [ true ])
                              |> List.fold (fun (acc, run) cut -> if cut then (acc @ [ run + 1 ], 0) else (acc, run + 1)) ([], 0)
                              |> fst

                          if sizes.Length = 1 then [] else sizes) ]

        // in flight between kicks: the groups after the first made plain, so that the outcome cannot depend on
        // when the first group completes (inFlightIsDeterministic)
        let! inFlight =
            if kicks.IsEmpty then
                Gen.constant false
            else
                Gen.elements [ false; true ]

        let requests =
            if inFlight then
                requests |> List.mapi (fun i r -> if i < kicks.Head then r else plainRequest r)
            else
                requests
            |> keepMmioDataClear
            |> separateWrites kicks inFlight

        return
            { Transport = transport
              Budget = budget
              Rings = rings
              Kicks = kicks
              InFlight = inFlight
              Requests = requests }
    }

let AllTransports = [ VirtioTransport.Legacy; VirtioTransport.Modern ]

let genSpec = genSpecWith AllTransports [] true

let shrinkSpec (c: CaseSpec) : CaseSpec seq =
    let simpler (r: RequestSpec) =
        seq {
            for i in 0 .. r.Pieces.Length - 1 do
                if r.Pieces.Length > 1 then
                    yield
                        { r with
                            Pieces = List.removeAt i r.Pieces }

            for i, (p, l) in List.indexed r.Pieces do
                if p <> 0 then
                    yield
                        { r with
                            Pieces = List.updateAt i (0, l) r.Pieces }

                if l > 512u then
                    yield
                        { r with
                            Pieces = List.updateAt i (p, 512u) r.Pieces }

                if l > 1u && l <> 512u then
                    yield
                        { r with
                            Pieces = List.updateAt i (p, l / 2u) r.Pieces }

            if r.Type <> 0u then
                yield { r with Type = 0u }

            if r.Sector <> 1UL then
                yield { r with Sector = 1UL }

            if r.StatusInMmio then
                yield { r with StatusInMmio = false }

            if r.Malformed <> WellFormed then
                yield { r with Malformed = WellFormed }

            if r.TableAt <> TableInRam then
                yield { r with TableAt = TableInRam }

            if r.Indirect then
                yield
                    { r with
                        Indirect = false
                        TableAt = TableInRam }
        }

    seq {
        if not c.Kicks.IsEmpty then
            yield { c with Kicks = []; InFlight = false }

        if c.InFlight then
            yield { c with InFlight = false }

        if c.Requests.Length > 1 && c.Kicks.IsEmpty then
            for i in 0 .. c.Requests.Length - 1 do
                yield
                    { c with
                        Requests = List.removeAt i c.Requests }

        for i, r in List.indexed c.Requests do
            for r' in simpler r do
                yield
                    { c with
                        Requests = List.updateAt i r' c.Requests }

        if c.Budget.IsSome then
            yield { c with Budget = None }

        if c.Transport = VirtioTransport.Modern then
            if c.Rings.DescIn <> RingInRam then
                yield
                    { c with
                        Rings = { c.Rings with DescIn = RingInRam } }

            if c.Rings.AvailIn <> RingInRam then
                yield
                    { c with
                        Rings = { c.Rings with AvailIn = RingInRam } }

            if c.Rings.UsedIn <> RingInRam then
                yield
                    { c with
                        Rings = { c.Rings with UsedIn = RingInRam } }
        elif c.Rings <> RingsInRam then
            yield { c with Rings = RingsInRam }
    }
    // a smaller case never races where the case did not
    |> Seq.filter (fun s ->
        (not s.InFlight || inFlightIsDeterministic s.Kicks s.Requests)
        && not (racingWrites s.Kicks s.InFlight s.Requests)
        && keepMmioDataClear s.Requests = s.Requests)

/// Shrinking that may also move a case to the legacy transport (when both are under test).
let shrinkSpecAcross (transports: VirtioTransport list) (c: CaseSpec) =
    seq {
        yield! shrinkSpec c

        if
            List.contains VirtioTransport.Legacy transports
            && c.Transport <> VirtioTransport.Legacy
            && c.Budget.IsNone
            && c.Rings = RingsInRam
        then
            yield
                { c with
                    Transport = VirtioTransport.Legacy }
    }

/// The generated cases as requests, for a queue of 256 (for tests that want them without the spec).
let genCase = genSpec |> Gen.map (build 256)

/// Raw qtest round trips per second on this process (a 4-byte read each): the ceiling of the differential rate.
let qtestRoundTrips (q: QemuProcess) =
    let sw = Diagnostics.Stopwatch.StartNew()
    let n = 2000

    for i in 1..n do
        q.Qtest.Read(Data, 4) |> ignore

    float n / sw.Elapsed.TotalSeconds


/// Both observations of one request, side by side, rows that differ marked.
let sideBySide (r: Request) (qemuName: string) (real: Outcome) (modelName: string) (model: Outcome) =
    let row (what: string) (q: string) (m: string) =
        sprintf "%s %-28s %-40s %s" (if q = m then " " else "≠") what q m

    let hex (b: byte[]) =
        if b.Length > 16 then
            ScenarioTrace.Hex b.[..15] + "..."
        else
            ScenarioTrace.Hex b

    let (a1, u1, i1), (a2, u2, i2) = real.Queue, model.Queue

    [ sprintf "  %-28s %-40s %s" "" qemuName modelName
      row "used ring" (sprintf "%A" real.UsedList) (sprintf "%A" model.UsedList)
      row "broken" (string real.IsBroken) (string model.IsBroken)
      row
          "DEVICE_NEEDS_RESET"
          (match real.NeedsReset with
           | Some b -> string b
           | None -> "(legacy: not shown)")
          (if real.NeedsReset.IsSome then
               string model.IsBroken
           else
               "(legacy: not shown)")
      row "last_avail/used_idx/inuse" (sprintf "%d/%d/%d" a1 u1 i1) (sprintf "%d/%d/%d" a2 u2 i2)
      for ((a, l), (q, m)) in List.zip r.Look (List.zip real.Bytes model.Bytes) do
          row (sprintf "bytes at 0x%x (+%d)" a l) (hex q) (hex m)
      // QEMU prefixes its program name; a model line counts as shown when QEMU's output contains it
      let modelLines = model.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries)

      let shown =
          modelLines |> Array.forall (fun l -> real.Errors.Contains l)
          && (modelLines.Length > 0 || real.Errors.Trim() = "")

      sprintf
          "%s %-28s %-40s %s"
          (if shown then " " else "≠")
          "error lines"
          (real.Errors.Trim().Replace("\n", " | "))
          (model.Errors.Trim().Replace("\n", " | ")) ]

/// Environment variable: generated differential cases per run (default 300).
let CasesVariable = "CONFORMANCE_QEMU_CASES"

let defaultCases () =
    match Environment.GetEnvironmentVariable CasesVariable with
    | null
    | "" -> 300
    | s -> Int32.Parse s

/// What a differential run found: the verdict, the report, the shrunk counterexample, and for the version
/// matrix: which observations the last disagreeing case differed in, the case labels with their share,
/// the queue sizes the devices reported and the rate.
type DifferentialOutcome =
    {
        Passed: bool
        Tests: int
        Report: string
        Counterexample: CaseSpec option
        Disagreements: string list
        Distribution: (string * float) list
        QueueSizes: string
        CasesPerSecond: float
        /// Kicks that did not wait for the previous ones, and at how many of them requests were still in flight.
        KicksNotWaitedFor: int * int
    }

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
    elif difference.StartsWith "bytes at" then
        "device-writable bytes"
    elif difference.StartsWith "disk image" then
        "disk image"
    else
        "error lines"

/// Runs `cases` generated requests on the QEMU at `binary` (one reused process per transport) and on the
/// model with `profile`, and reports: verdict, rate, where the time went, the case distribution, and for
/// a disagreement both observations in words, the model-side scenario and the replay token.
/// `modelFault` runs a broken variant of the model instead (to show the differential catches model bugs).
let checkAgainstOn
    (transports: VirtioTransport list)
    (modelFault: Fault)
    (binary: QemuBinary)
    (profile: Profile)
    (cases: int)
    (replay: Runner.ReplayToken option)
    : DifferentialOutcome =
    let romImage = romImageOf binary
    // one reused process per transport and bounce budget, each with the model's picture of it
    let targets =
        Collections.Generic.Dictionary<VirtioTransport * uint64 option, Target>()

    let startTime = Diagnostics.Stopwatch()

    let targetFor transport budget =
        match targets.TryGetValue((transport, budget)) with
        | true, t -> t
        | _ ->
            startTime.Start()

            let qemu = new QemuTarget(binary, transport, Option.toNullable budget)

            let t =
                try
                    targetOf binary profile qemu
                with _ ->
                    qemu.Dispose()
                    reraise ()

            targets.[(transport, budget)] <- t
            startTime.Stop()
            t

    use _ =
        { new IDisposable with
            member _.Dispose() =
                for t in targets.Values do
                    t.Qemu.Dispose() }

    let budgets =
        if binary.DeviceHasProperty("virtio-blk-pci", "x-max-bounce-buffer-size") then
            Budgets
        else
            []

    let deviation = KnownDeviations.idFor (KnownDeviations.load ()) "F-BLK-2"

    let kd1 =
        KnownDeviations.appliesTo (KnownDeviations.load ()) "F-BLK-2" binary.Version

    let kd2 =
        KnownDeviations.appliesTo (KnownDeviations.load ()) "F-QEMU-2" binary.Version

    let kd3 =
        KnownDeviations.appliesTo (KnownDeviations.load ()) "F-QEMU-3" binary.Version

    let qemuTime, modelTime = Diagnostics.Stopwatch(), Diagnostics.Stopwatch()
    let mutable lastDisagreement = []

    // KD-2 (F-QEMU-2): this QEMU keeps the bounce bytes a failed pop had been granted counted against the
    // device's budget for the life of the process. Rather than a fresh process after every such case, the
    // model side of the next cases on that process gets the budget less those bytes (QEMU then grants
    // exactly what a fresh QEMU with that budget would: system/physmem.c:address_space_map), until three quarters of
    // it is gone. Key: the process's generation in its session, and the bytes it keeps.
    let leaks =
        Collections.Generic.Dictionary<VirtioTransport * uint64 option, int * uint64>()

    let mutable judgedAgain = 0

    let leakedOn (target: Target) key =
        match leaks.TryGetValue key with
        | true, (generation, bytes) when generation = target.Qemu.BlkSession.ProcessesStarted -> bytes
        | _ -> 0UL

    let rec judgeOn (spec: CaseSpec) (retried: bool) =
        let target = targetFor spec.Transport spec.Budget
        let key = (spec.Transport, spec.Budget)
        let label, transport, request = build target.Model.QueueSize spec
        qemuTime.Start()
        let real = requestOnQemu target target.Model request
        qemuTime.Stop()
        let leaked = if kd2 then leakedOn target key else 0UL

        let side, label =
            match spec.Budget with
            | Some b when leaked > 0UL ->
                withBudget target.Model (b - leaked),
                sprintf "%s (budget %d: %d bytes kept by earlier failed pops on this process, KD-2)" label (b - leaked) leaked
            | _ -> target.Model, label

        let budgeted = kd2 && spec.Budget.IsSome

        let forget () =
            target.Qemu.Restart()
            leaks.Remove key |> ignore

        let model, run, problems =
            try
                modelTime.Start()
                let model, run = requestOnModelWith modelFault side (Some romImage) request
                modelTime.Stop()
                model, run, differencesWith kd1 request real model run
            with _ ->
                modelTime.Stop()

                if budgeted then
                    forget ()

                reraise ()

        let kept = leaked + run.Virtio.BounceBytesUndone

        // a case that disagrees says nothing trustworthy about what QEMU kept: its process is not reused
        if budgeted && (not problems.IsEmpty || kept * 4UL > spec.Budget.Value * 3UL) then
            forget ()
        elif budgeted && kept > leaked then
            leaks.[key] <- (target.Qemu.BlkSession.ProcessesStarted, kept)

        // a disagreement on a reduced budget is judged again on a fresh process: what a failure prints then
        // replays without the process's history (the count must stay 0 while the carried budget is exact)
        if not problems.IsEmpty && leaked > 0UL && not retried then
            judgedAgain <- judgedAgain + 1
            judgeOn spec true
        else
            judged spec target label transport request real model run problems side (budgeted && kept > 0UL)

    and judged spec target label transport request real model run problems (side: ModelSide) (kd2Applied: bool) =
        if not problems.IsEmpty then
            lastDisagreement <- problems |> List.map observationOf |> List.distinct

        let restarted = kd2Applied

        let labels =
            [ sprintf "%A transport" transport
              match spec.Budget with
              | Some b -> sprintf "bounce budget %d (device address space)" b
              | None ->
                  if not budgets.IsEmpty && transport = VirtioTransport.Modern then
                      "default bounce budget (address_space_memory)"
              if model.IsBroken then
                  "device broke"
              if restarted then
                  "known deviation KD-2: bounce bytes kept by failed pops (ran on a reduced budget or left one)"
              if real.NeedsReset = Some true then
                  "DEVICE_NEEDS_RESET seen (modern)"
              if model.Unspecified then
                  if kd1 then
                      sprintf "known deviation %s: uninitialised bounce bytes written back" deviation
                  else
                      "bounce bytes nobody produced written back (compared: KD-1 is not registered for this version)"
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
                      sprintf "a buffer in %s" (snd places.[p])
              if spec.Requests |> List.exists (fun r -> r.StatusInMmio) then
                  "a status byte in MMIO"
              for r in spec.Requests do
                  if r.Malformed <> WellFormed then
                      sprintf "malformed chain: %A" r.Malformed
              if spec.Requests |> List.exists (fun r -> r.Indirect) then
                  "an indirect table"
              if spec.Requests |> List.exists (fun r -> r.TableAt = TableInMmio) then
                  "an indirect table in MMIO"
              if spec.Requests |> List.exists (fun r -> r.TableAt = TableAcrossMmioEnd) then
                  "an indirect table across the end of MMIO"
              for (name, place) in
                  [ "descriptor table", spec.Rings.DescIn
                    "available ring", spec.Rings.AvailIn
                    "used ring", spec.Rings.UsedIn ] do
                  if place <> RingInRam then
                      sprintf
                          "%s in %s"
                          name
                          (match place with
                           | RingInMmio -> "MMIO"
                           | RingInRom -> "ROM"
                           | RingInUnassigned -> "unassigned space"
                           | RingInRam -> "RAM") ]

        let verdicts =
            if problems.IsEmpty then
                []
            else
                let scenario =
                    ScenarioJson.Write(Scenario(profile, run.Scenario.Layout, run.Scenario.Ops, Description = label, LayoutFrom = Option.toObj side.LayoutFrom))

                let table =
                    sideBySide request (sprintf "QEMU %O (%A)" binary.Version transport) real (sprintf "model (%A)" profile) model

                [ Verdict.Violated(
                      String.concat
                          "\n"
                          ([ sprintf "case: %s" label ]
                           @ problems
                           @ table
                           @ [ sprintf
                                   "scenario (model side; conformance replay FILE --target qemu --qemu %s --transport %s runs it%s):"
                                   binary.Path
                                   ((string transport).ToLowerInvariant())
                                   (if modelFault = Fault.None then
                                        ""
                                    else
                                        " against the reference model, not the broken variant: the replay token above reproduces this failure")
                               scenario ])
                  ) ]

        Verdict.judged labels verdicts
    // start the default processes outside the timed part
    for transport in transports do
        let t = targetFor transport None

        requestOnQemu t t.Model (single (header 0u 1UL) [ 0, Header, 16u, N, 0us ] [] [])
        |> ignore

    startTime.Reset()
    let sw = Diagnostics.Stopwatch.StartNew()

    let capture =
        Runner.runProperty
            (Arb.fromGenShrink (genSpecWith transports budgets (not kd3), shrinkSpecAcross transports))
            (fun spec -> judgeOn spec false)
            cases
            replay

    let elapsed = sw.Elapsed.TotalSeconds
    let first = (targetFor transports.Head None).Qemu.BlkSession
    let roundTrips = qtestRoundTrips first.Process
    let ran = capture.Count
    let perCase (t: TimeSpan) = t.TotalMilliseconds / float (max 1 ran)

    let sum (f: VirtioBlkSession -> TimeSpan) =
        targets.Values
        |> Seq.sumBy (fun t -> (f t.Qemu.BlkSession).Ticks)
        |> TimeSpan.FromTicks

    let prepare, submit, wait, readBack =
        sum (fun s -> let struct (p, _, _, _) = s.Time in p),
        sum (fun s -> let struct (_, x, _, _) = s.Time in x),
        sum (fun s -> let struct (_, _, w, _) = s.Time in w),
        sum (fun s -> let struct (_, _, _, r) = s.Time in r)

    let processes =
        targets.Values |> Seq.sumBy (fun t -> t.Qemu.BlkSession.ProcessesStarted)

    let queueSizes =
        targets.Values
        |> Seq.map (fun t -> sprintf "%A %d" t.Qemu.Transport t.Model.QueueSize)
        |> Seq.distinct
        |> String.concat ", "

    let sb = Text.StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore

    let passed, message, token, shrunk =
        match capture.Result with
        | Some(TestResult.Passed _) -> true, "", None, None
        | Some(TestResult.Failed(data, _, shrunkArgs, outcome, _, rnd, size)) ->
            let shrunk =
                shrunkArgs
                |> List.tryPick (function
                    | :? CaseSpec as c -> Some c
                    | _ -> None)

            false,
            sprintf "%s\n(shrunk %d times with QEMU in the loop)" (Runner.failureMessage data outcome) data.NumberOfShrinks,
            Some(
                { Seed = rnd.Seed
                  Gamma = rnd.Gamma
                  Size = size }
                : Runner.ReplayToken
            ),
            shrunk
        | _ -> false, "FsCheck reported no result", None, None

    line (
        sprintf
            "%s  differential virtio-blk requests against %s (QEMU %O, %s transport, model profile %A%s): %d cases"
            (if passed then "PASS" else "FAIL")
            binary.Path
            binary.Version
            (if transports.Length > 1 then
                 "legacy and modern"
             else
                 (string transports.Head).ToLowerInvariant())
            profile
            (if modelFault = Fault.None then
                 ""
             else
                 sprintf ", broken variant %A" modelFault)
            ran
    )

    line (
        sprintf
            "      %.1f cases/s (%d cases in %.1f s, %.1f s of it starting processes) on %d QEMU processes, one per transport and bounce budget; raw qtest round trips on one of them: %.0f/s"
            (float ran / elapsed)
            ran
            elapsed
            startTime.Elapsed.TotalSeconds
            processes
            roundTrips
    )

    line (
        sprintf
            "      per case: QEMU %.1f ms (reset and restore %.2f, request %.2f, device %.2f, read back %.2f), model %.1f ms"
            (perCase qemuTime.Elapsed)
            (perCase prepare)
            (perCase submit)
            (perCase wait)
            (perCase readBack)
            (perCase modelTime.Elapsed)
    )

    line (
        sprintf
            "      the model ran on the layout each process printed (info mtree -D, settled by -f), queue sizes the devices report: %s%s"
            queueSizes
            (if binary.StatusQueryAborts then
                 "; this QEMU aborts on x-query-virtio-status (F-QEMU-1): broken read from DEVICE_NEEDS_RESET (modern) and a probe request (legacy)"
             else
                 "")
    )

    let notWaited, stillInFlight =
        targets.Values |> Seq.sumBy (fun t -> t.Qemu.BlkSession.KicksNotWaitedFor),
        targets.Values
        |> Seq.sumBy (fun t -> t.Qemu.BlkSession.KicksWithRequestsInFlight)

    if notWaited > 0 then
        line (
            sprintf
                "      kicks that did not wait for the previous ones: %d; requests still in flight at %d of them (not yet used, by the used index, when the next kick went out: popped, or not yet popped by a kick QEMU had still to handle)"
                notWaited
                stillInFlight
        )

    if kd2 then
        line (
            sprintf
                "      KD-2: %d processes started; %d cases disagreed on a process with kept bounce bytes and were judged again on a fresh one (0 when the carried budget is exact)"
                processes
                judgedAgain
        )

    if kd3 then
        line "      every ring in RAM: known deviation KD-3 (this QEMU reads and writes rings outside RAM at the wrong address)"

    for (label, pct) in Runner.distribution capture |> List.truncate 40 do
        line (sprintf "      %5.1f%% %s" pct label)

    if not passed then
        line "      why:"

        for l in message.Split('\n') do
            line ("        " + l)

        match token with
        | Some t ->
            line (sprintf "      replay token: %O (the first case it generates is the failing one, before shrinking)" t)

            line (
                sprintf
                    "      reproduce with: dotnet run --project src/Conformance.Cli -- check --target qemu --qemu %s --profile %A%s%s --replay %O"
                    binary.Path
                    profile
                    (if transports.Length > 1 then
                         ""
                     else
                         sprintf " --transport %s" ((string transports.Head).ToLowerInvariant()))
                    (if modelFault = Fault.None then
                         ""
                     else
                         sprintf " --variant %A" modelFault)
                    t
            )
        | None -> ()

    { Passed = passed
      Tests = ran
      Report = sb.ToString()
      Counterexample = shrunk
      Disagreements = (if passed then [] else lastDisagreement)
      Distribution = Runner.distribution capture
      QueueSizes = queueSizes
      CasesPerSecond = float ran / elapsed
      KicksNotWaitedFor = notWaited, stillInFlight }

let checkAgainstWith modelFault binary profile cases replay =
    checkAgainstOn AllTransports modelFault binary profile cases replay

let checkAgainst binary profile cases replay =
    checkAgainstWith Fault.None binary profile cases replay

/// Where a scenario's layout and the QEMU's disagree at an address the scenario uses (the "memory" views:
/// region name and offset there), if anywhere.
let layoutDisagreement (scenario: LayoutSpec) (qemu: LayoutSpec) (addresses: uint64 list) =
    let view (l: LayoutSpec) =
        MemorySystem(l, Profile.Qemu72).Space("memory").View

    let mine, theirs = view scenario, view qemu

    addresses
    |> List.tryPick (fun a ->
        let m, q = mine.Translate a, theirs.Translate a

        if
            m.Region.Name <> q.Region.Name
            || m.Xlat <> q.Xlat
            || m.Region.Kind <> q.Region.Kind
        then
            Some(sprintf "at 0x%x the scenario's layout has %s+0x%x, this QEMU %s+0x%x" a m.Region.Name m.Xlat q.Region.Name q.Xlat)
        else
            None)

/// The heads of each kick and whether the kicks leave requests in flight, if the operations are only
/// publish-kick-complete groups, or publish-kick groups with one complete-io after the last.
let private kickGroups (ops: ScenarioOp list) : (uint16 list list * bool) option =
    let rec groups (acc: uint16 list list) (rest: ScenarioOp list) =
        match rest with
        | [] -> if List.isEmpty acc then None else Some(List.rev acc, false)
        | (:? PublishOp as p) :: (:? KickOp) :: (:? CompleteIoOp) :: rest when p.Heads.Count > 0 -> groups (List.ofSeq p.Heads :: acc) rest
        | _ when not (List.isEmpty acc) -> None
        | _ -> inFlight [] rest

    and inFlight (acc: uint16 list list) (rest: ScenarioOp list) =
        match rest with
        | [ :? CompleteIoOp ] when acc.Length > 1 -> Some(List.rev acc, true)
        | (:? PublishOp as p) :: (:? KickOp) :: rest when p.Heads.Count > 0 -> inFlight (List.ofSeq p.Heads :: acc) rest
        | _ -> None

    groups [] ops

/// A scenario file as one kick of virtio-blk requests that QEMU can be driven through (the shape the
/// differential prints as "scenario (model side)"), or the reason it cannot be. With `target`, also: its
/// queue is the one that QEMU's driver sets up, and its layout agrees with that QEMU's at every address
/// the scenario uses.
let requestOfScenario (target: ModelSide option) (s: Scenario) : Result<Request, string> =
    let ops = List.ofSeq s.Ops
    let describe (o: ScenarioOp) = o.GetType().Name.Replace("Op", "")

    match ops with
    | (:? VirtioSetupOp as v) :: rest ->
        let queueDiffers =
            match target with
            | Some t -> v.QueueSize <> t.QueueSize
            | None -> false

        if
            (v.Space <> "memory" && v.Space <> DeviceSpace)
            || v.EventIdx
            || v.Indirect
            || v.DiskSectors <> 2048
        then
            Error(
                sprintf
                    "its virtio setup differs from the QEMU driver's (the device in \"memory\" or \"%s\", no EVENT_IDX or indirect descriptors, 2048 sectors)"
                    DeviceSpace
            )
        elif queueDiffers then
            let t = target.Value
            let d, a, u = t.Rings
            Error(sprintf "its queue has %d entries; this QEMU's device reports %d (the driver's rings: 0x%x/0x%x/0x%x)" v.QueueSize t.QueueSize d a u)
        else
            let writes =
                rest
                |> List.takeWhile (fun o -> o :? WriteOp)
                |> List.map (fun o -> o :?> WriteOp)

            match rest |> List.skip writes.Length with
            | (:? DescriptorsOp as d) :: kickOps when not d.Table.HasValue && kickGroups kickOps |> Option.isSome ->
                let groups, kicksInFlight = (kickGroups kickOps).Value

                if writes |> List.exists (fun w -> w.Space <> "memory") then
                    Error "a guest write goes to another address space than \"memory\""
                else
                    let entries = List.ofSeq d.Entries

                    let used =
                        [ for w in writes do
                              yield w.Addr

                              if w.Data.Length > 0 then
                                  yield w.Addr + uint64 w.Data.Length - 1UL
                          for e in entries do
                              yield e.Addr

                              if e.Len > 0u then
                                  yield e.Addr + uint64 e.Len - 1UL ]

                    match target |> Option.bind (fun t -> layoutDisagreement s.Layout t.Layout used) with
                    | Some where -> Error(sprintf "its layout is not this QEMU's: %s" where)
                    | None ->
                        let header, before =
                            match writes with
                            | w :: others when w.Addr = Header && w.Data.Length = 16 -> w.Data, others
                            | _ -> Array.zeroCreate 16, writes

                        Ok
                            { Header = header
                              Before = before |> List.map (fun w -> w.Addr, w.Data)
                              Descriptors = entries |> List.map (fun e -> e.Index, e.Addr, e.Len, e.Flags, e.Next)
                              Look =
                                entries
                                |> List.filter (fun e -> e.Flags &&& W <> 0us && e.Len > 0u)
                                |> List.map (fun e -> e.Addr, int (min e.Len 4096u))
                              Heads = groups |> List.concat
                              Kicks =
                                if groups.Length = 1 then
                                    []
                                else
                                    groups |> List.map List.length
                              KicksInFlight = kicksInFlight
                              Rings =
                                match target with
                                | Some t when (v.Desc, v.Avail, v.Used) = t.Rings -> None
                                | _ -> Some(v.Desc, v.Avail, v.Used) }
            | others ->
                Error(
                    sprintf
                        "QEMU can run virtio-setup, writes, descriptors, then publish, kick, complete-io (once or more; or publish, kick more than once and one complete-io) in that order; this scenario has %s after its writes"
                        (String.Join(", ", others |> List.map describe))
                )
    | first :: _ -> Error(sprintf "it starts with %s, not a virtio setup" (describe first))
    | [] -> Error "it has no operations"

/// Runs a scenario file on QEMU (one fresh process on the given transport) and on the model (the scenario
/// as written: its layout, profile and queue): the two observations side by side, every difference in
/// words, and the model's trace. Error: not realisable on this QEMU.
let replayOnQemu (binary: QemuBinary) (transport: VirtioTransport) (s: Scenario) : Result<bool * string, string> =
    let romImage = romImageOf binary

    // a device that DMAs through its own address space has a bounce budget: x-max-bounce-buffer-size with
    // iommu_platform=on, which needs the modern transport (QemuProcess.DeviceArguments)
    let budget =
        match Seq.tryHead s.Ops with
        | Some(:? VirtioSetupOp as v) when v.Space = DeviceSpace ->
            s.Layout.AddressSpaces
            |> Seq.tryFind (fun a -> a.Name = DeviceSpace)
            |> Option.map (fun a -> a.MaxBounceBufferSize)
        | _ -> None

    let transport = if budget.IsSome then VirtioTransport.Modern else transport

    use qemu = new QemuTarget(binary, transport, Option.toNullable budget)
    let target = targetOf binary s.Profile qemu

    match requestOfScenario (Some target.Model) s with
    | Error why -> Error why
    | Ok request ->
        let v = s.Ops |> Seq.head :?> VirtioSetupOp

        let side =
            { target.Model with
                Layout = s.Layout
                LayoutSource = "the scenario"
                Space = v.Space
                LayoutFrom = Option.ofObj s.LayoutFrom }

        let real = requestOnQemu target side request
        let model, run = requestOnModel side (Some romImage) request
        let problems = differences binary.Version request real model run

        let lines =
            [ yield! sideBySide request (sprintf "QEMU %O (%A)" binary.Version transport) real (sprintf "model (%A)" s.Profile) model
              yield ""
              if problems.IsEmpty then
                  yield "QEMU and the model agree."
              else
                  yield "differences:"

                  for p in problems do
                      yield "  " + p

                  if
                      model.Unspecified
                      && KnownDeviations.appliesTo (KnownDeviations.load ()) "F-BLK-2" binary.Version
                  then
                      yield
                          sprintf
                              "  (known deviation %s applies: bytes the model marks never-produced are not compared)"
                              (KnownDeviations.idFor (KnownDeviations.load ()) "F-BLK-2")
              yield ""
              yield "the model's trace:"
              yield ScenarioTrace.Render run ]

        Ok(problems.IsEmpty, String.Join("\n", lines) + "\n")

/// One column of the version matrix: a QEMU and its differential runs, one per transport.
type VersionColumn =
    { Binary: QemuBinary
      Profile: Profile
      Runs: (VirtioTransport * DifferentialOutcome) list }

/// The version matrix as a Markdown table: rows are the compared observations, the generated cases per
/// transport, the bounce budgets, and the registered deviations and QEMU findings; columns are QEMU
/// versions; cells say agree, the deviation that applied, or disagree with the count of failing cases.
let versionMatrix (columns: VersionColumn list) =
    let deviations = KnownDeviations.load ()
    let findings = KnownDeviations.loadQemuFindings ()

    let share (o: DifferentialOutcome) (label: string) =
        o.Distribution
        |> List.filter (fun (l, _) -> l.StartsWith label)
        |> List.sumBy snd
        |> fun pct -> int (Math.Round(pct * float o.Tests / 100.0))

    let cell (c: VersionColumn) (f: VirtioTransport * DifferentialOutcome -> string option) =
        match c.Runs |> List.choose f |> List.distinct with
        | [] -> "-"
        | xs -> String.Join("; ", xs)

    let observation (name: string) (c: VersionColumn) =
        let failing =
            c.Runs |> List.filter (fun (_, o) -> List.contains name o.Disagreements)

        if not failing.IsEmpty then
            sprintf "**disagree** (%s)" (String.Join(", ", failing |> List.map (fun (t, _) -> sprintf "%A: 1 shrunk case" t)))
        elif
            name = "device-writable bytes"
            && KnownDeviations.appliesTo deviations "F-BLK-2" c.Binary.Version
        then
            sprintf "agree; KD-1 in %d cases" (c.Runs |> List.sumBy (fun (_, o) -> share o "known deviation KD-1"))
        elif
            name = "DEVICE_NEEDS_RESET"
            && not (c.Runs |> List.exists (fun (t, _) -> t = VirtioTransport.Modern))
        then
            "-"
        else
            "agree"

    let registry (id: string) (seen: string list) (absent: string list) (notApplicable: string list) (c: VersionColumn) =
        let v = string c.Binary.Version

        if List.contains v seen then sprintf "seen (%s)" id
        elif List.contains v absent then "checked absent"
        elif List.contains v notApplicable then "cannot arise"
        else "not checked"

    let rows =
        [ "model profile", (fun (c: VersionColumn) -> string c.Profile)
          "queue size the device reports", (fun c -> cell c (fun (_, o) -> Some o.QueueSizes))
          "x-query-virtio-status",
          (fun c ->
              if c.Binary.StatusQueryAborts then
                  "aborts QEMU (F-QEMU-1)"
              else
                  "answers")
          for t in AllTransports do
              sprintf "generated cases, %s transport" ((string t).ToLowerInvariant()),
              (fun c ->
                  match c.Runs |> List.tryFind (fun (t', _) -> t' = t) with
                  | None -> "not run"
                  | Some(_, o) when o.Passed -> sprintf "agree (%d cases, %.0f/s)" o.Tests o.CasesPerSecond
                  | Some(_, o) -> sprintf "**disagree** (1 shrunk case after %d)" o.Tests)
          for name in
              [ "used ring"
                "broken flag"
                "DEVICE_NEEDS_RESET"
                "queue 0 state"
                "device-writable bytes"
                "disk image"
                "error lines" ] do
              "compared: " + name, observation name
          "rings outside RAM (MMIO, ROM, unassigned)",
          (fun c ->
              let n =
                  c.Runs
                  |> List.sumBy (fun (_, o) ->
                      o.Distribution
                      |> List.filter (fun (l, _) -> l.Contains " ring in " || l.StartsWith "descriptor table in")
                      |> List.sumBy snd
                      |> fun pct -> int (Math.Round(pct * float o.Tests / 100.0)))

              if KnownDeviations.appliesTo deviations "F-QEMU-3" c.Binary.Version then
                  "not generated (KD-3)"
              else
                  sprintf "%d placements" n)
          "kicks without waiting for the previous ones",
          (fun c ->
              let kicks = c.Runs |> List.sumBy (fun (_, o) -> fst o.KicksNotWaitedFor)
              let inFlight = c.Runs |> List.sumBy (fun (_, o) -> snd o.KicksNotWaitedFor)
              sprintf "%d kicks; earlier requests not yet used at %d" kicks inFlight)
          "bounce budgets (iommu_platform=on, modern)",
          (fun c ->
              if not (c.Binary.DeviceHasProperty("virtio-blk-pci", "x-max-bounce-buffer-size")) then
                  "n/a (no x-max-bounce-buffer-size)"
              else
                  let n = c.Runs |> List.sumBy (fun (_, o) -> share o "bounce budget ")
                  let kd2 = c.Runs |> List.sumBy (fun (_, o) -> share o "known deviation KD-2")

                  if kd2 > 0 then
                      sprintf "%d cases; KD-2 in %d" n kd2
                  else
                      sprintf "%d cases" n)
          for d in deviations do
              sprintf "%s (%s)" d.Id d.Finding, registry d.Id d.SeenOn d.AbsentOn d.NotApplicableOn
          for f in findings do
              sprintf "%s: %s" f.Id f.Title, registry f.Id f.SeenOn f.AbsentOn f.NotApplicableOn ]

    let header =
        "| | "
        + String.Join(" | ", columns |> List.map (fun c -> sprintf "QEMU %O" c.Binary.Version))
        + " |"

    let rule = "|---|" + String.replicate columns.Length "---|"

    String.Join(
        "\n",
        [ header; rule ]
        @ [ for (name, f) in rows -> sprintf "| %s | %s |" name (String.Join(" | ", columns |> List.map f)) ]
    )
    + "\n"
