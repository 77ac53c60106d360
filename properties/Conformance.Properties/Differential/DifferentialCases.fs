/// The cases of the differential (P26 targets-agree): virtio-blk requests as a guest driver makes them on a
/// q35 machine with pc-testdev's MMIO storage (QEMU's, or the model's picture of it), written as scenarios
/// on the target's machine: the device set up where its driver puts it, the guest's writes, descriptors,
/// publish-kick groups and completion, then every device-writable buffer read back by the guest. Data is
/// placed in RAM, MMIO, ROM, unassigned space and across region ends; chains are well formed or malformed;
/// some are indirect; rings may sit outside RAM; several kicks, some without waiting. Shrinking works on the
/// case's description: fewer requests and pieces, shorter pieces, RAM instead of other places, plain reads.
module Conformance.Properties.DifferentialCases

open System
open System.Runtime.CompilerServices
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets
open Conformance.Model.Virtio

/// pc-testdev-iomem: 64 KiB of plain storage behind MMIO callbacks.
let Mmio = 0xff000000UL
/// Inside pc.bios, distinctive bytes from here on.
let Rom = 0xfffe0000UL
let Header, Data, Status = 0x200000UL, 0x300000UL, 0x280000UL
let W, N = VirtioConstants.DescFlagWrite, VirtioConstants.DescFlagNext
/// Where the driver puts queue 0's rings by default (the legacy layout from here).
let RingBase = 0x100000UL

/// What the guest does: the 16-byte header written at Header, other guest writes, the given descriptor table
/// (index, addr, len, flags, next), the heads published (one kick for all); then the used ring, the broken
/// flag and the bytes at each of `Look` are compared.
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

/// A virtio-blk request header: type, sector.
let header (typ: uint32) (sector: uint64) =
    let h = Array.zeroCreate<byte> 16
    BitConverter.TryWriteBytes(Span(h, 0, 4), typ) |> ignore
    BitConverter.TryWriteBytes(Span(h, 8, 8), sector) |> ignore
    h

/// The scenario operations of a request for a device in `space` with a queue of `queueSize` whose rings
/// are `defaultRings` unless the request places them (VERSION_1 negotiated where `version1`).
let requestOpsWith (space: string) (queueSize: int) (defaultRings: uint64 * uint64 * uint64) (version1: bool) (r: Request) : ScenarioOp list =
    let desc, avail, usedRing = r.Rings |> Option.defaultValue defaultRings

    [ VirtioSetupOp(space, queueSize, desc, avail, usedRing, false, false, version1, 2048, "") :> ScenarioOp
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

/// The request as a scenario on `machine`, ending with the guest reading back every buffer of `Look`.
let scenarioOf (machine: TargetMachine) (profile: Profile) (description: string) (r: Request) =
    let ops =
        requestOpsWith machine.Space machine.QueueSize (machine.Desc, machine.Avail, machine.Used) machine.Version1 r
        @ [ for (a, l) in r.Look -> ReadOp("memory", a, uint64 l) :> ScenarioOp ]

    Scenario(profile, machine.Layout, Array.ofList ops, Description = description, LayoutFrom = machine.LayoutFrom)

/// Where a piece of data may go: an address and its name in the case's description.
let places =
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
/// With `Indirect`, the whole chain lives in an indirect table and the ring holds one descriptor pointing
/// at it (QEMU and the model accept VRING_DESC_F_INDIRECT on the head whatever was negotiated).
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
    | RingInRam -> RingBase
    | RingInMmio -> Mmio + 0x8000UL
    | RingInRom -> Rom
    | RingInUnassigned -> 0x20000000UL

/// The three ring addresses of a placement for a queue of `queueSize`.
let ringAddresses (queueSize: int) (r: RingSpec) =
    ringBase r.DescIn, VirtioConstants.LegacyAvail(ringBase r.AvailIn, queueSize), VirtioConstants.LegacyUsed(ringBase r.UsedIn, queueSize)

/// A generated case: 1-4 requests in one or several kicks, and where the rings are. The transport and the
/// device's bounce budget are the target's (a QEMU started so); `SeparateRings` says whether the target's
/// transport places each ring on its own (modern) or all three in one page frame (legacy), which shrinking
/// must respect.
type CaseSpec =
    {
        SeparateRings: bool
        Rings: RingSpec
        Kicks: int list
        /// The kicks follow each other without waiting for completion (only where the outcome cannot depend on
        /// when the block layer completes: see `inFlightIsDeterministic`).
        InFlight: bool
        Requests: RequestSpec list
    }

/// The guest's memory and descriptor table for a case: request k's header at Header + 0x40k, its status
/// at Status + 0x10k (or in MMIO), its data at the next free offset of each place, its descriptors
/// numbered on from the previous request's (in a queue of `queueSize`); with the case described in words.
let build (queueSize: int) (c: CaseSpec) : string * Request =
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
                look.Add((addr, int (min len 16384u))) // whole buffers: the target clears what a case reads back

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

    let rings =
        if c.Rings = RingsInRam then
            ""
        else
            sprintf "rings: descriptors %A, available %A, used %A; " c.Rings.DescIn c.Rings.AvailIn c.Rings.UsedIn

    let kicks =
        if c.Kicks.IsEmpty then
            ""
        else
            sprintf "kicks of %s requests%s; " (String.Join("+", c.Kicks)) (if c.InFlight then " in flight" else "")

    let label =
        sprintf "%s%s%s" rings kicks (String.Join("; ", c.Requests |> List.map describe))

    let first = c.Requests.Head

    label,
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
/// whenever the block layer completes them. It has when every request after the first group stays in RAM
/// and is well formed: it then takes no bounce space the first group may still hold (or have freed), and
/// cannot break the device, which would stop the first group's completions from being published
/// (hw/virtio/virtio.c:virtqueue_flush only counts them on a working device: PUSH-1 in docs/qemu-rules.md).
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

/// Whether an OUT request may be in flight together with another request on the same sectors. A device
/// hands the requests of a kick to its block layer together, and that completes them in any order (a thread
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

/// Cases for a target whose transport places rings separately where `separateRings`, with rings outside RAM
/// where `ringsOutsideRam` (not where F-QEMU-3 makes them meaningless).
let genSpecWith (separateRings: bool) (ringsOutsideRam: bool) =
    gen {
        let! rings =
            if not ringsOutsideRam then
                Gen.constant RingsInRam
            elif not separateRings then
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
        // F-QEMU-3: where region caches outside RAM are read at the wrong address, tables stay in RAM too
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
            { SeparateRings = separateRings
              Rings = rings
              Kicks = kicks
              InFlight = inFlight
              Requests = requests }
    }

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

        if c.SeparateRings then
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

/// The machine the differential's model-only runs use when the target runs any layout: QEMU 7.2's q35
/// (fixtures/layouts, named by file in printed scenarios), its device in "memory" on the legacy transport,
/// a queue of 256 with the legacy rings at RingBase.
let q35Machine =
    lazy
        (let path = "fixtures/layouts/qemu-7.2/q35.mtree-D.txt"

         let from =
             LayoutReference(path, null, Collections.Generic.Dictionary<string, uint64>())

         TargetMachine(
             LayoutFiles.resolve None from,
             "memory",
             256,
             RingBase,
             VirtioConstants.LegacyAvail(RingBase, 256),
             VirtioConstants.LegacyUsed(RingBase, 256),
             2048,
             "",
             false,
             false,
             false,
             struct (0x200000UL, 0x3000000UL),
             Nullable<struct (uint64 * uint64)>(struct (Mmio, Mmio + 0x10000UL)),
             LayoutFrom = from
         ))

/// What each generated scenario was built from, so that shrinking works on the description (a scenario read
/// from a file has none and is not shrunk).
let private specs = ConditionalWeakTable<Scenario, CaseSpec>()

/// The case a generated scenario was built from.
let specOf (s: Scenario) =
    match specs.TryGetValue s with
    | true, c -> Some c
    | _ -> None

/// A case as the scenario a target runs on `machine`.
let toScenario (machine: TargetMachine) (profile: Profile) (c: CaseSpec) =
    let label, request = build machine.QueueSize c
    let s = scenarioOf machine profile label request
    specs.AddOrUpdate(s, c)
    s

/// The differential's cases on a target's machine (or QEMU 7.2's q35 for a target that runs any layout).
let arbitrary (machine: TargetMachine option) (profile: Profile) =
    let m = machine |> Option.defaultWith (fun () -> q35Machine.Value)
    let ringsOutsideRam = not (m.Deviates "F-QEMU-3")
    // the legacy transport takes one page frame for all rings; a machine negotiating VERSION_1 is modern
    let separateRings = m.Version1

    Arb.fromGenShrink (
        genSpecWith separateRings ringsOutsideRam |> Gen.map (toScenario m profile),
        fun s ->
            match specOf s with
            | Some c -> shrinkSpec c |> Seq.map (toScenario m profile)
            | None -> Seq.empty
    )
