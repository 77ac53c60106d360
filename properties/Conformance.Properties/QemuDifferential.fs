/// The differential check against real QEMU: one virtio-blk request run on a QEMU (legacy or modern
/// virtio-blk-pci over qtest, one reused process per transport) and on the model over QEMU's own q35
/// layout, and every difference between the two observations in words. Used by the `Qemu` test category
/// and by `conformance check --target qemu`.
module Conformance.Properties.QemuDifferential

open System
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Qemu

let Mmio = 0xff000000UL      // pc-testdev-iomem, 64 KiB of plain storage behind MMIO callbacks
let Rom = 0xfffe0000UL       // pc.bios, distinctive bytes from here on
let Header, Data, Status = 0x200000UL, 0x300000UL, 0x280000UL
let W, N = VirtioConstants.DescFlagWrite, VirtioConstants.DescFlagNext

/// The committed q35 layout of the QEMU the differential runs against (fixtures/layouts).
let q35 =
    lazy (
        let dir = IO.Path.Combine(Regression.repoRoot () |> Option.defaultValue Environment.CurrentDirectory, "fixtures", "layouts")
        MtreeDump.Parse(IO.File.ReadAllText(IO.Path.Combine(dir, "qemu-7.2", "q35.mtree-D.txt")), "qemu-7.2/q35.mtree-D.txt"))

/// The used ring of a model run: its index and the elements the run published.
let used (run: ScenarioRun) = run.Virtio.Driver.UsedIdx(), (run.Steps |> Seq.choose (fun s -> Option.ofObj s.Virtio) |> Seq.collect (fun v -> v.NewUsed) |> List.ofSeq)
let read (run: ScenarioRun) (addr: uint64) (n: int) = let b = Array.zeroCreate<byte> n in run.System.Read(run.System.Space "memory", addr, Span b); b

/// What the guest does on both sides: the 16-byte header written at Header, other guest writes, the given
/// descriptor table (index, addr, len, flags, next), the heads published (one kick for all), completion;
/// then the used ring, the broken flag and the bytes at each of `Look`.
type Request =
    { Header: byte[]; Descriptors: (int * uint64 * uint32 * uint16 * uint16) list; Before: (uint64 * byte[]) list; Look: (uint64 * int) list
      Heads: uint16 list }

/// One request with head 0.
let single (header: byte[]) descriptors before look = { Header = header; Descriptors = descriptors; Before = before; Look = look; Heads = [ 0us ] }

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
    { UsedList: (uint32 * uint32) list; IsBroken: bool; Bytes: byte[] list; Errors: string; Unspecified: bool; NeedsReset: bool option
      Queue: uint16 * uint16 * int
      /// The disk afterwards, where the case may have written it (None: not looked at).
      Disk: byte[] option }

/// The same request as a case for a reused QEMU (VirtioBlkSession).
let toCase (r: Request) =
    BlkRequestCase(
        [| yield GuestWrite(Header, r.Header); for (a, b) in r.Before -> GuestWrite(a, b) |],
        [| for (i, a, l, f, n) in r.Descriptors -> struct (i, VringDesc(a, l, f, n)) |],
        [| for (a, l) in r.Look -> GuestRange(a, l) |],
        // an OUT request, or guest writes that could hold another header, may change the disk
        BitConverter.ToUInt32(r.Header, 0) = 1u || not r.Before.IsEmpty,
        Array.ofList r.Heads)

/// The request on a reused QEMU; a QEMU that died or hung is reported as an outcome the model never has.
/// (QEMU may complete several requests in any order: the used list is compared as a set.)
let requestOnSession (session: VirtioBlkSession) (r: Request) =
    let o = session.Run(toCase r)
    { UsedList = o.Used |> Seq.map (fun struct (i, l) -> i, l) |> List.ofSeq
      IsBroken = o.Broken
      Bytes = List.ofSeq o.Bytes
      Errors = (match o.QemuFailure with null -> o.Errors | f -> sprintf "QEMU FAILED (%s); stderr: %s" f o.Errors)
      Unspecified = false
      NeedsReset = if session.Transport = VirtioTransport.Modern then Some(o.DeviceStatus &&& 0x40uy <> 0uy) else None
      Queue = (let struct (a, u, i) = o.Queue in (a, u, i))
      Disk = Option.ofObj o.Disk }

/// QEMU's BIOS image as the guest sees it at 0xfffc0000 (256 KiB), read once per binary, so ROM buffers
/// hold the same bytes on both sides.
let romImageOf =
    let images = Collections.Concurrent.ConcurrentDictionary<string, byte[]>()
    fun (binary: QemuBinary) ->
        images.GetOrAdd(binary.Path, fun _ ->
            use q = new QemuProcess(binary, VirtioContext.InitialDisk 16)
            q.Qtest.Read(0xfffc0000UL, 0x40000))

/// The request on a fresh QEMU (a session of one case).
let requestOnQemu (binary: QemuBinary) (r: Request) =
    use session = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048)
    requestOnSession session r

/// The model side, on QEMU's own q35 layout with the binary's profile; `rom` is QEMU's BIOS image, where
/// the request reads ROM.
let requestOnModelWith (fault: Fault) (profile: Profile) (rom: byte[] option) (r: Request) =
    let spec = q35.Force()
    let system = MemorySystem(spec, profile, fault)
    rom |> Option.iter (fun image -> system.Region("pc.bios").RamBlock.Bytes.Write(0UL, ReadOnlySpan image))
    let ops =
        [ VirtioSetupOp("memory", 256, 0x100000UL, 0x101000UL, 0x102000UL, false, false, false, 2048, "") :> ScenarioOp
          WriteOp("memory", Header, r.Header)
          yield! r.Before |> List.map (fun (a, b) -> WriteOp("memory", a, b) :> ScenarioOp)
          DescriptorsOp(Nullable(), r.Descriptors |> List.map (fun (i, a, l, f, n) -> DescriptorEntry(i, a, l, f, n)) |> Array.ofList)
          PublishOp(Array.ofList r.Heads)
          KickOp()
          CompleteIoOp() ]
    let run = ScenarioRunner.Run(Scenario(profile, spec, Array.ofList ops), system)
    { UsedList = snd (used run) |> List.map (fun struct (i, l) -> i, l)
      IsBroken = run.Virtio.Device.Broken
      Bytes = r.Look |> List.map (fun (a, l) -> read run a l)
      Errors = String.Join("\n", run.Virtio.Device.Errors)
      Unspecified = run.System.UnproducedBytesWrittenBack > 0L
      NeedsReset = None
      Queue = (let q = run.Virtio.Device.Queues.[0] in (q.LastAvailIdx, q.UsedIdx, q.InUse))
      Disk = Some run.Virtio.Blk.Disk }, run

let requestOnModel profile rom r = requestOnModelWith Fault.None profile rom r

/// Every difference between QEMU's outcome and the model's, in words (empty: they agree).
let differences (r: Request) (real: Outcome) (model: Outcome) (run: ScenarioRun) =
    let bounced (a: uint64) = not (run.System.Space("memory").View.Translate(a).Region.IsDirect true)
    // several requests of one kick complete in whatever order the block layer finishes them
    [ if List.sort real.UsedList <> List.sort model.UsedList then sprintf "used ring: QEMU %A, model %A" real.UsedList model.UsedList
      if real.IsBroken <> model.IsBroken then sprintf "broken: QEMU %b, model %b" real.IsBroken model.IsBroken
      if real.Queue <> model.Queue then
          let (a1, u1, i1), (a2, u2, i2) = real.Queue, model.Queue
          sprintf "queue 0 (last_avail_idx, used_idx, inuse): QEMU (%d, %d, %d), model (%d, %d, %d)" a1 u1 i1 a2 u2 i2
      match real.NeedsReset with
      | Some needsReset when needsReset <> model.IsBroken ->
          sprintf "DEVICE_NEEDS_RESET: QEMU %b, but the model's device is %s" needsReset (if model.IsBroken then "broken" else "working")
      | _ -> ()
      for ((a, _), (q, m)) in List.zip r.Look (List.zip real.Bytes model.Bytes) do
          if q <> m && not (model.Unspecified && bounced a) then
              sprintf "bytes at 0x%x differ: QEMU %s, model %s" a (ScenarioTrace.Hex q) (ScenarioTrace.Hex m)
      match real.Disk, model.Disk with
      | Some q, Some m when q <> m ->
          let sectors = [ for s in 0 .. min q.Length m.Length / 512 - 1 do
                            if not (ReadOnlySpan(q, s * 512, 512).SequenceEqual(ReadOnlySpan(m, s * 512, 512))) then yield s ]
          sprintf "disk image differs (%d vs %d bytes) in sectors %A" q.Length m.Length (sectors |> List.truncate 8)
      | _ -> ()
      for e in model.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries) do
          if not (real.Errors.Contains e) then sprintf "the model reports \"%s\"; QEMU printed: %s" e (real.Errors.Trim()) ]

let private places =
    [| 0x300000UL, "RAM"; 0x3ffff00UL, "RAM end"; Mmio + 0x100UL, "MMIO"; Mmio + 0xff00UL, "MMIO end"; Rom + 0x1000UL, "ROM"; 0x10000000UL, "unassigned" |]

/// How a generated chain is malformed (the malformed chains of the virtqueue issue), if it is.
type Malformation =
    | WellFormed
    /// the last data descriptor points back at the first: "Looped descriptor" (or bounce exhaustion first)
    | Loop
    /// a device-readable descriptor after the device-writable data: "Incorrect order for descriptors"
    | ReadableAfterWritable
    /// the header's next index is 300 in a queue of 256: "Desc next is 300"
    | NextOutOfRange
    /// a zero-length data descriptor: "zero sized buffers are not allowed"
    | ZeroLength

/// One generated request: type, sector, data pieces (place index, length), where its status byte goes,
/// and whether its chain is malformed.
/// With `Indirect`, the whole chain lives in an indirect table in RAM and the ring holds one descriptor
/// pointing at it (QEMU and the model accept VRING_DESC_F_INDIRECT on the head whatever was negotiated).
type RequestSpec = { Type: uint32; Sector: uint64; Pieces: (int * uint32) list; StatusInMmio: bool; Malformed: Malformation; Indirect: bool }

/// A generated case: 1-4 requests published before one kick, on one transport. Shrinking works on this
/// description with QEMU in the loop: fewer requests and pieces, shorter pieces, RAM instead of other
/// places, plain reads, the legacy transport.
type CaseSpec = { Transport: VirtioTransport; Requests: RequestSpec list }

/// The guest's memory and descriptor table for a case: request k's header at Header + 0x40k, its status
/// at Status + 0x10k (or in MMIO), its data at the next free offset of each place, its descriptors
/// numbered on from the previous request's.
let build (c: CaseSpec) : string * VirtioTransport * Request =
    let offsets = Collections.Generic.Dictionary<int, uint64>()
    let mutable next = 0
    let descriptors = ResizeArray()
    let before = ResizeArray()
    let look = ResizeArray()
    let heads = ResizeArray()
    for k, r in List.indexed c.Requests do
        let headerAt = Header + uint64 (0x40 * k)
        if k > 0 then before.Add((headerAt, header r.Type r.Sector))
        let statusAt = (if r.StatusInMmio then Mmio + 0x8000UL else Status) + uint64 (0x10 * k)
        let data =
            [ for (place, len) in r.Pieces ->
                let off = match offsets.TryGetValue place with | true, o -> o | _ -> 0UL
                offsets.[place] <- off + uint64 len + 0x10UL
                fst places.[place] + off, len ]
        let flags = if r.Type = 1u then N else W ||| N
        // the chain with indices local to where it lives (the ring from `next` on, or an indirect table)
        let data = if r.Malformed = ZeroLength then data @ [ fst places.[0] + 0x8000UL + uint64 (0x100 * k), 0u ] else data
        let chain =
            [ yield headerAt, 16u, N, (if r.Malformed = NextOutOfRange then 300 else 1)
              for i, (addr, len) in List.indexed data do
                  let last = i = data.Length - 1
                  yield addr, len, flags, (if r.Malformed = Loop && last then 1 else i + 2)
              if r.Malformed = ReadableAfterWritable then
                  yield Data + 0x9000UL + uint64 (0x100 * k), 16u, N, data.Length + 2
              yield statusAt, 1u, W, 0 ]
        heads.Add(uint16 next)
        if r.Indirect then
            let table = Data + 0x80000UL + uint64 (0x400 * k)
            let bytes = Array.zeroCreate<byte> (16 * chain.Length)
            chain |> List.iteri (fun i (a, l, f, n) -> VringDesc(a, l, f, uint16 n).Encode(Span(bytes, 16 * i, 16)))
            before.Add((table, bytes))
            descriptors.Add((next, table, uint32 bytes.Length, VirtioConstants.DescFlagIndirect, 0us))
            next <- next + 1
        else
            let start = next
            for (a, l, f, n) in chain do
                descriptors.Add((next, a, l, f, (if n = 300 then 300us else uint16 (start + n))))
                next <- next + 1
        look.Add((statusAt, 1))
        for (addr, len) in data do if len > 0u then look.Add((addr, int (min len 16384u)))   // whole buffers: the session clears what a case reads back
    let describe (r: RequestSpec) =
        sprintf "type %d sector %d [%s]%s%s%s" r.Type r.Sector
            (String.Join(", ", r.Pieces |> List.map (fun (p, l) -> sprintf "%s %d" (snd places.[p]) l)))
            (if r.StatusInMmio then " status in MMIO" else "")
            (if r.Malformed = WellFormed then "" else sprintf " malformed: %A" r.Malformed)
            (if r.Indirect then " indirect" else "")
    let label = sprintf "%A: %s" c.Transport (String.Join("; ", c.Requests |> List.map describe))
    let first = c.Requests.Head
    label, c.Transport,
    { Header = header first.Type first.Sector; Descriptors = List.ofSeq descriptors; Before = List.ofSeq before
      Look = List.ofSeq look; Heads = List.ofSeq heads }

let private genRequest =
    gen {
        let! typ = Gen.frequency [ 4, Gen.constant 0u; 3, Gen.constant 1u; 1, Gen.constant 4u; 1, Gen.constant 8u; 1, Gen.constant 6u ]
        let! n = Gen.choose (1, 3)
        let! pieces =
            Gen.listOfLength n (
                Gen.zip
                    (Gen.frequency [ 6, Gen.constant 0; 4, Gen.choose (0, places.Length - 1) ])
                    (Gen.frequency [ 3, Gen.elements [ 1u; 16u; 511u; 512u; 513u ]; 2, Gen.elements [ 4095u; 4096u; 4097u; 8192u ]; 1, Gen.choose (1, 9000) |> Gen.map uint32 ]))
        let! sector = Gen.frequency [ 4, Gen.constant 1UL; 1, Gen.constant 2047UL; 1, Gen.constant 5000UL ]
        let! statusInMmio = Gen.elements [ false; true ]
        let! malformed = Gen.frequency [ 12, Gen.constant WellFormed; 1, Gen.elements [ Loop; ReadableAfterWritable; NextOutOfRange; ZeroLength ] ]
        let! indirect = Gen.frequency [ 4, Gen.constant false; 1, Gen.constant true ]
        return { Type = typ; Sector = sector; Pieces = pieces; StatusInMmio = statusInMmio; Malformed = malformed; Indirect = indirect }
    }

let genSpec =
    gen {
        let! transport = Gen.elements [ VirtioTransport.Legacy; VirtioTransport.Modern ]
        let! count = Gen.frequency [ 3, Gen.constant 1; 2, Gen.choose (2, 4) ]
        let! requests = Gen.listOfLength count genRequest
        return { Transport = transport; Requests = requests }
    }

let shrinkSpec (c: CaseSpec) : CaseSpec seq =
    let simpler (r: RequestSpec) =
        seq {
            for i in 0 .. r.Pieces.Length - 1 do
                if r.Pieces.Length > 1 then yield { r with Pieces = List.removeAt i r.Pieces }
            for i, (p, l) in List.indexed r.Pieces do
                if p <> 0 then yield { r with Pieces = List.updateAt i (0, l) r.Pieces }
                if l > 512u then yield { r with Pieces = List.updateAt i (p, 512u) r.Pieces }
                if l > 1u && l <> 512u then yield { r with Pieces = List.updateAt i (p, l / 2u) r.Pieces }
            if r.Type <> 0u then yield { r with Type = 0u }
            if r.Sector <> 1UL then yield { r with Sector = 1UL }
            if r.StatusInMmio then yield { r with StatusInMmio = false }
            if r.Malformed <> WellFormed then yield { r with Malformed = WellFormed }
            if r.Indirect then yield { r with Indirect = false }
        }
    seq {
        if c.Requests.Length > 1 then
            for i in 0 .. c.Requests.Length - 1 do yield { c with Requests = List.removeAt i c.Requests }
        for i, r in List.indexed c.Requests do
            for r' in simpler r do yield { c with Requests = List.updateAt i r' c.Requests }
        if c.Transport <> VirtioTransport.Legacy then yield { c with Transport = VirtioTransport.Legacy }
    }

/// The generated cases as requests (for tests that want them without the spec).
let genCase = genSpec |> Gen.map build

/// Raw qtest round trips per second on this process (a 4-byte read each): the ceiling of the differential rate.
let qtestRoundTrips (q: QemuProcess) =
    let sw = Diagnostics.Stopwatch.StartNew()
    let n = 2000
    for i in 1 .. n do q.Qtest.Read(Data, 4) |> ignore
    float n / sw.Elapsed.TotalSeconds


/// Both observations of one request, side by side, rows that differ marked.
let sideBySide (r: Request) (qemuName: string) (real: Outcome) (modelName: string) (model: Outcome) =
    let row (what: string) (q: string) (m: string) = sprintf "%s %-28s %-40s %s" (if q = m then " " else "≠") what q m
    let hex (b: byte[]) = if b.Length > 16 then ScenarioTrace.Hex b.[..15] + "..." else ScenarioTrace.Hex b
    let (a1, u1, i1), (a2, u2, i2) = real.Queue, model.Queue
    [ sprintf "  %-28s %-40s %s" "" qemuName modelName
      row "used ring" (sprintf "%A" real.UsedList) (sprintf "%A" model.UsedList)
      row "broken" (string real.IsBroken) (string model.IsBroken)
      row "DEVICE_NEEDS_RESET" (match real.NeedsReset with Some b -> string b | None -> "(legacy: not shown)") (if real.NeedsReset.IsSome then string model.IsBroken else "(legacy: not shown)")
      row "last_avail/used_idx/inuse" (sprintf "%d/%d/%d" a1 u1 i1) (sprintf "%d/%d/%d" a2 u2 i2)
      for ((a, l), (q, m)) in List.zip r.Look (List.zip real.Bytes model.Bytes) do
          row (sprintf "bytes at 0x%x (+%d)" a l) (hex q) (hex m)
      // QEMU prefixes its program name; a model line counts as shown when QEMU's output contains it
      let modelLines = model.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries)
      let shown = modelLines |> Array.forall (fun l -> real.Errors.Contains l) && (modelLines.Length > 0 || real.Errors.Trim() = "")
      sprintf "%s %-28s %-40s %s" (if shown then " " else "≠") "error lines" (real.Errors.Trim().Replace("\n", " | ")) (model.Errors.Trim().Replace("\n", " | ")) ]

/// Environment variable: generated differential cases per run (default 300).
let CasesVariable = "CONFORMANCE_QEMU_CASES"

let defaultCases () =
    match Environment.GetEnvironmentVariable CasesVariable with
    | null | "" -> 300
    | s -> Int32.Parse s

type DifferentialOutcome = { Passed: bool; Tests: int; Report: string; Counterexample: CaseSpec option }

/// Runs `cases` generated requests on the QEMU at `binary` (one reused process per transport) and on the
/// model with `profile`, and reports: verdict, rate, where the time went, the case distribution, and for
/// a disagreement both observations in words, the model-side scenario and the replay token.
/// `modelFault` runs a broken variant of the model instead (to show the differential catches model bugs).
let checkAgainstWith (modelFault: Fault) (binary: QemuBinary) (profile: Profile) (cases: int) (replay: Runner.ReplayToken option) : DifferentialOutcome =
    let romImage = romImageOf binary
    use legacy = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048, transport = VirtioTransport.Legacy)
    use modern = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048, transport = VirtioTransport.Modern)
    let deviation = KnownDeviations.idFor (KnownDeviations.load ()) "F-BLK-2"
    let qemuTime, modelTime = Diagnostics.Stopwatch(), Diagnostics.Stopwatch()
    let judge (spec: CaseSpec) =
        let label, transport, request = build spec
        qemuTime.Start()
        let real = requestOnSession (if transport = VirtioTransport.Modern then modern else legacy) request
        qemuTime.Stop()
        modelTime.Start()
        let model, run = requestOnModelWith modelFault profile (Some romImage) request
        modelTime.Stop()
        let problems = differences request real model run
        let labels =
            [ sprintf "%A transport" transport
              if model.IsBroken then "device broke"
              if real.NeedsReset = Some true then "DEVICE_NEEDS_RESET seen (modern)"
              if model.Unspecified then sprintf "known deviation %s: uninitialised bounce bytes written back" deviation
              if spec.Requests.Length > 1 then sprintf "%d requests in one kick" spec.Requests.Length
              for p in spec.Requests |> List.collect (fun r -> r.Pieces |> List.map fst) |> List.distinct do
                  if p <> 0 then sprintf "a buffer in %s" (snd places.[p])
              if spec.Requests |> List.exists (fun r -> r.StatusInMmio) then "a status byte in MMIO"
              for r in spec.Requests do
                  if r.Malformed <> WellFormed then sprintf "malformed chain: %A" r.Malformed
              if spec.Requests |> List.exists (fun r -> r.Indirect) then "an indirect table" ]
        let verdicts =
            if problems.IsEmpty then []
            else
                let scenario = ScenarioJson.Write(Scenario(profile, run.Scenario.Layout, run.Scenario.Ops, Description = label))
                let table = sideBySide request (sprintf "QEMU %O (%A)" binary.Version transport) real (sprintf "model (%A)" profile) model
                [ Verdict.Violated(String.concat "\n" ([ sprintf "case: %s" label ] @ problems @ table @ [ "scenario (model side; conformance replay FILE --target qemu runs it):"; scenario ])) ]
        Verdict.judged labels verdicts
    // start both processes outside the timed part
    legacy.Run(toCase (single (header 0u 1UL) [ 0, Header, 16u, N, 0us ] [] [])) |> ignore
    modern.Run(toCase (single (header 0u 1UL) [ 0, Header, 16u, N, 0us ] [] [])) |> ignore
    let sw = Diagnostics.Stopwatch.StartNew()
    let capture = Runner.runProperty (Arb.fromGenShrink (genSpec, shrinkSpec)) judge cases replay
    let elapsed = sw.Elapsed.TotalSeconds
    let roundTrips = qtestRoundTrips legacy.Process
    let ran = capture.Count
    let perCase (t: TimeSpan) = t.TotalMilliseconds / float (max 1 ran)
    let struct (p1, s1, w1, r1), struct (p2, s2, w2, r2) = legacy.Time, modern.Time
    let sb = Text.StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore
    let passed, message, token, shrunk =
        match capture.Result with
        | Some(TestResult.Passed _) -> true, "", None, None
        | Some(TestResult.Failed(data, _, shrunkArgs, outcome, _, rnd, size)) ->
            let shrunk = shrunkArgs |> List.tryPick (function :? CaseSpec as c -> Some c | _ -> None)
            false, sprintf "%s\n(shrunk %d times with QEMU in the loop)" (Runner.failureMessage data outcome) data.NumberOfShrinks,
            Some({ Seed = rnd.Seed; Gamma = rnd.Gamma; Size = size }: Runner.ReplayToken), shrunk
        | _ -> false, "FsCheck reported no result", None, None
    line (sprintf "%s  differential virtio-blk requests against %s (QEMU %O, model profile %A%s): %d cases"
              (if passed then "PASS" else "FAIL") binary.Path binary.Version profile
              (if modelFault = Fault.None then "" else sprintf ", broken variant %A" modelFault) ran)
    line (sprintf "      %.1f cases/s (%d cases in %.1f s) on %d QEMU processes, one per transport; raw qtest round trips on the same process: %.0f/s"
              (float ran / elapsed) ran elapsed (legacy.ProcessesStarted + modern.ProcessesStarted) roundTrips)
    line (sprintf "      per case: QEMU %.1f ms (reset and restore %.2f, request %.2f, device %.2f, read back %.2f), model %.1f ms"
              (perCase qemuTime.Elapsed) (perCase (p1 + p2)) (perCase (s1 + s2)) (perCase (w1 + w2)) (perCase (r1 + r2)) (perCase modelTime.Elapsed))
    for (label, pct) in Runner.distribution capture |> List.truncate 12 do
        line (sprintf "      %5.1f%% %s" pct label)
    if not passed then
        line "      why:"
        for l in message.Split('\n') do line ("        " + l)
        match token with
        | Some t ->
            line (sprintf "      replay token: %O (the first case it generates is the failing one, before shrinking)" t)
            line (sprintf "      reproduce with: dotnet run --project src/Conformance.Cli -- check --target qemu --qemu %s --replay %O" binary.Path t)
        | None -> ()
    { Passed = passed; Tests = ran; Report = sb.ToString(); Counterexample = shrunk }

let checkAgainst binary profile cases replay = checkAgainstWith Fault.None binary profile cases replay

/// A scenario file as one kick of virtio-blk requests that QEMU can be driven through (the shape the
/// differential prints as "scenario (model side)"), or the reason it cannot be.
let requestOfScenario (s: Scenario) : Result<Request, string> =
    let expectedRegions = q35.Force().AllRegions() |> Seq.map (fun r -> r.Name) |> Set.ofSeq
    let regions = s.Layout.AllRegions() |> Seq.map (fun r -> r.Name) |> Set.ofSeq
    let ops = List.ofSeq s.Ops
    let describe (o: ScenarioOp) = o.GetType().Name.Replace("Op", "")
    if regions <> expectedRegions then Error "its layout is not QEMU's q35 machine (fixtures/layouts/qemu-7.2/q35.mtree-D.txt): only that machine can be run on QEMU"
    else
        match ops with
        | (:? VirtioSetupOp as v) :: rest ->
            if v.Space <> "memory" || v.QueueSize <> 256 || v.Desc <> VirtioBlkSession.RingBase || v.Avail <> VirtioBlkSession.RingBase + 0x1000UL
               || v.Used <> VirtioBlkSession.RingBase + 0x2000UL || v.EventIdx || v.Indirect || v.DiskSectors <> 2048 then
                Error "its virtio setup differs from the QEMU driver's (queue of 256 at 0x100000/0x101000/0x102000 in \"memory\", no EVENT_IDX or indirect descriptors, 2048 sectors)"
            else
                let writes = rest |> List.takeWhile (fun o -> o :? WriteOp) |> List.map (fun o -> o :?> WriteOp)
                match rest |> List.skip writes.Length with
                | [ (:? DescriptorsOp as d); (:? PublishOp as p); (:? KickOp); (:? CompleteIoOp) ] when not d.Table.HasValue ->
                    if writes |> List.exists (fun w -> w.Space <> "memory") then Error "a guest write goes to another address space than \"memory\""
                    else
                        let header, before =
                            match writes with
                            | w :: others when w.Addr = Header && w.Data.Length = 16 -> w.Data, others
                            | _ -> Array.zeroCreate 16, writes
                        let entries = List.ofSeq d.Entries
                        Ok { Header = header
                             Before = before |> List.map (fun w -> w.Addr, w.Data)
                             Descriptors = entries |> List.map (fun e -> e.Index, e.Addr, e.Len, e.Flags, e.Next)
                             Look = entries |> List.filter (fun e -> e.Flags &&& W <> 0us && e.Len > 0u) |> List.map (fun e -> e.Addr, int (min e.Len 4096u))
                             Heads = List.ofSeq p.Heads }
                | others ->
                    Error(sprintf "QEMU can run virtio-setup, writes, descriptors, publish, kick, complete-io in that order; this scenario has %s after its writes"
                              (String.Join(", ", others |> List.map describe)))
        | first :: _ -> Error(sprintf "it starts with %s, not a virtio setup" (describe first))
        | [] -> Error "it has no operations"

/// Runs a scenario file on QEMU (one fresh process on the given transport) and on the model: the two
/// observations side by side, every difference in words, and the model's trace. Error: not realisable.
let replayOnQemu (binary: QemuBinary) (transport: VirtioTransport) (s: Scenario) : Result<bool * string, string> =
    match requestOfScenario s with
    | Error why -> Error why
    | Ok request ->
        let romImage = romImageOf binary
        use session = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048, transport = transport)
        let real = requestOnSession session request
        let model, run = requestOnModel s.Profile (Some romImage) request
        let problems = differences request real model run
        let lines =
            [ yield! sideBySide request (sprintf "QEMU %O (%A)" binary.Version transport) real (sprintf "model (%A)" s.Profile) model
              yield ""
              if problems.IsEmpty then yield "QEMU and the model agree."
              else
                  yield "differences:"
                  for p in problems do yield "  " + p
                  if model.Unspecified then yield sprintf "  (known deviation %s applies: bytes the model marks never-produced are not compared)" (KnownDeviations.idFor (KnownDeviations.load ()) "F-BLK-2")
              yield ""
              yield "the model's trace:"
              yield ScenarioTrace.Render run ]
        Ok(problems.IsEmpty, String.Join("\n", lines) + "\n")
