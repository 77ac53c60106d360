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
        let hints = IO.Path.Combine(dir, "q35.terminates.txt")
        let terminating = if IO.File.Exists hints then IO.File.ReadAllLines hints |> Array.filter (fun l -> l.Trim() <> "") else [||]
        MtreeDump.Parse(IO.File.ReadAllText(IO.Path.Combine(dir, "q35.mtree.txt")), terminating, "q35.mtree.txt"))

/// The used ring of a model run: its index and the elements the run published.
let used (run: ScenarioRun) = run.Virtio.Driver.UsedIdx(), (run.Steps |> Seq.choose (fun s -> Option.ofObj s.Virtio) |> Seq.collect (fun v -> v.NewUsed) |> List.ofSeq)
let read (run: ScenarioRun) (addr: uint64) (n: int) = let b = Array.zeroCreate<byte> n in run.System.Read(run.System.Space "memory", addr, Span b); b

/// A whole request on both sides: the 16-byte header written at Header, other guest writes, the given
/// descriptor table (index, addr, len, flags, next), head 0 published, kick, completion; then the used
/// ring, the broken flag and the bytes at each of `Look`.
type Request =
    { Header: byte[]; Descriptors: (int * uint64 * uint32 * uint16 * uint16) list; Before: (uint64 * byte[]) list; Look: (uint64 * int) list }

/// A virtio-blk request header: type, sector.
let header (typ: uint32) (sector: uint64) =
    let h = Array.zeroCreate<byte> 16
    BitConverter.TryWriteBytes(Span(h, 0, 4), typ) |> ignore
    BitConverter.TryWriteBytes(Span(h, 8, 8), sector) |> ignore
    h

/// What both sides are compared on. Unspecified: the model wrote back bounce bytes nobody produced
/// (QEMU 7.2 writes heap garbage there, F-BLK-2), so bytes in bounced buffers cannot be compared.
/// NeedsReset: on the modern transport, whether device_status carries DEVICE_NEEDS_RESET (None elsewhere).
type Outcome = { UsedList: (uint32 * uint32) list; IsBroken: bool; Bytes: byte[] list; Errors: string; Unspecified: bool; NeedsReset: bool option }

let requestOnQemu (binary: QemuBinary) (r: Request) =
    use q = new QemuProcess(binary, VirtioContext.InitialDisk 2048)
    let blk = LegacyVirtioBlk(q, 0x100000UL)
    blk.Initialise()
    q.Qtest.Write(Header, ReadOnlySpan r.Header)
    for (a, bytes) in r.Before do q.Qtest.Write(a, ReadOnlySpan bytes)
    for (i, a, l, f, n) in r.Descriptors do blk.WriteDescriptor(i, VringDesc(a, l, f, n))
    blk.Publish 0us
    blk.Kick()
    let completed = blk.WaitForUsed(1us, TimeSpan.FromSeconds 3.0)
    let broken = blk.Broken()
    // stderr arrives asynchronously: give an error line a moment to show up
    let deadline = DateTime.UtcNow.AddSeconds 1.0
    while broken && not (q.Stderr().Contains "virtio") && DateTime.UtcNow < deadline do Threading.Thread.Sleep 10
    { UsedList = (if completed then [ (let struct (i, l) = blk.UsedElement 0 in (i, l)) ] else [])
      IsBroken = broken
      Bytes = r.Look |> List.map (fun (a, l) -> q.Qtest.Read(a, l))
      Errors = q.Stderr()
      Unspecified = false
      NeedsReset = None }

/// The same request as a case for a reused QEMU (VirtioBlkSession).
let toCase (r: Request) =
    BlkRequestCase(
        [| yield GuestWrite(Header, r.Header); for (a, b) in r.Before -> GuestWrite(a, b) |],
        [| for (i, a, l, f, n) in r.Descriptors -> struct (i, VringDesc(a, l, f, n)) |],
        [| for (a, l) in r.Look -> GuestRange(a, l) |],
        // an OUT request, or guest writes that could hold another header, may change the disk
        BitConverter.ToUInt32(r.Header, 0) = 1u || not r.Before.IsEmpty)

/// The request on a reused QEMU; a QEMU that died or hung is reported as an outcome the model never has.
let requestOnSession (session: VirtioBlkSession) (r: Request) =
    let o = session.Run(toCase r)
    { UsedList = o.Used |> Seq.map (fun struct (i, l) -> i, l) |> List.ofSeq
      IsBroken = o.Broken
      Bytes = List.ofSeq o.Bytes
      Errors = (match o.QemuFailure with null -> o.Errors | f -> sprintf "QEMU FAILED (%s); stderr: %s" f o.Errors)
      Unspecified = false
      NeedsReset = if session.Transport = VirtioTransport.Modern then Some(o.DeviceStatus &&& 0x40uy <> 0uy) else None }

/// The model side, on QEMU's own q35 layout with the binary's profile; `rom` is QEMU's BIOS image, where
/// the request reads ROM.
let requestOnModel (profile: Profile) (rom: byte[] option) (r: Request) =
    let spec = q35.Force()
    let system = MemorySystem(spec, profile)
    rom |> Option.iter (fun image -> system.Region("pc.bios").RamBlock.Bytes.Write(0UL, ReadOnlySpan image))
    let ops =
        [ VirtioSetupOp("memory", 256, 0x100000UL, 0x101000UL, 0x102000UL, false, false, false, 2048, "") :> ScenarioOp
          WriteOp("memory", Header, r.Header)
          yield! r.Before |> List.map (fun (a, b) -> WriteOp("memory", a, b) :> ScenarioOp)
          DescriptorsOp(Nullable(), r.Descriptors |> List.map (fun (i, a, l, f, n) -> DescriptorEntry(i, a, l, f, n)) |> Array.ofList)
          PublishOp [| 0us |]
          KickOp()
          CompleteIoOp() ]
    let run = ScenarioRunner.Run(Scenario(profile, spec, Array.ofList ops), system)
    { UsedList = snd (used run) |> List.map (fun struct (i, l) -> i, l)
      IsBroken = run.Virtio.Device.Broken
      Bytes = r.Look |> List.map (fun (a, l) -> read run a l)
      Errors = String.Join("\n", run.Virtio.Device.Errors)
      Unspecified = run.System.UnproducedBytesWrittenBack > 0L
      NeedsReset = None }, run

/// Every difference between QEMU's outcome and the model's, in words (empty: they agree).
let differences (r: Request) (real: Outcome) (model: Outcome) (run: ScenarioRun) =
    let bounced (a: uint64) = not (run.System.Space("memory").View.Translate(a).Region.IsDirect true)
    [ if real.UsedList <> model.UsedList then sprintf "used ring: QEMU %A, model %A" real.UsedList model.UsedList
      if real.IsBroken <> model.IsBroken then sprintf "broken: QEMU %b, model %b" real.IsBroken model.IsBroken
      match real.NeedsReset with
      | Some needsReset when needsReset <> model.IsBroken ->
          sprintf "DEVICE_NEEDS_RESET: QEMU %b, but the model's device is %s" needsReset (if model.IsBroken then "broken" else "working")
      | _ -> ()
      for ((a, _), (q, m)) in List.zip r.Look (List.zip real.Bytes model.Bytes) do
          if q <> m && not (model.Unspecified && bounced a) then
              sprintf "bytes at 0x%x differ: QEMU %s, model %s" a (ScenarioTrace.Hex q) (ScenarioTrace.Hex m)
      for e in model.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries) do
          if not (real.Errors.Contains e) then sprintf "the model reports \"%s\"; QEMU printed: %s" e (real.Errors.Trim()) ]

let private places =
    [ 0x300000UL, "RAM"; 0x3ffff00UL, "RAM end"; Mmio + 0x100UL, "MMIO"; Mmio + 0xff00UL, "MMIO end"; Rom + 0x1000UL, "ROM"; 0x10000000UL, "unassigned" ]

let genCase =
    gen {
        let! typ = Gen.frequency [ 4, Gen.constant 0u; 3, Gen.constant 1u; 1, Gen.constant 4u; 1, Gen.constant 8u; 1, Gen.constant 6u ]
        let! n = Gen.choose (1, 3)
        let! pieces =
            Gen.listOfLength n (Gen.zip (Gen.frequency [ 6, Gen.constant places.[0]; 4, Gen.elements places ]) (Gen.frequency [ 3, Gen.elements [ 1u; 16u; 511u; 512u; 513u ]; 2, Gen.elements [ 4095u; 4096u; 4097u; 8192u ]; 1, Gen.choose (1, 9000) |> Gen.map uint32 ]))
        let! sector = Gen.frequency [ 4, Gen.constant 1UL; 1, Gen.constant 2047UL; 1, Gen.constant 5000UL ]
        let! statusAt = Gen.elements [ Status; Mmio + 0x8000UL ]
        let! transport = Gen.elements [ VirtioTransport.Legacy; VirtioTransport.Modern ]
        // pieces of the same place are laid out one after another
        let offsets = Collections.Generic.Dictionary<uint64, uint64>()
        let data =
            [ for ((place, _), len) in pieces ->
                let off = match offsets.TryGetValue place with | true, o -> o | _ -> 0UL
                offsets.[place] <- off + uint64 len + 0x10UL
                place + off, len ]
        let flags = if typ = 1u then N else W ||| N
        let descriptors =
            [ yield 0, Header, 16u, N, 1us
              for (k, (a, l)) in List.indexed data -> k + 1, a, l, flags, uint16 (k + 2)
              yield data.Length + 1, statusAt, 1u, W, 0us ]
        let label = sprintf "%A: type %d, %s" transport typ (pieces |> List.map (fun ((_, p), _) -> p) |> List.distinct |> String.concat "+")
        let look = (statusAt, 1u) :: data |> List.map (fun (a, l) -> a, int (min l 4096u))
        return label, transport, { Header = header typ sector; Descriptors = descriptors; Before = []; Look = look }
    }

/// Raw qtest round trips per second on this process (a 4-byte read each): the ceiling of the differential rate.
let qtestRoundTrips (q: QemuProcess) =
    let sw = Diagnostics.Stopwatch.StartNew()
    let n = 2000
    for i in 1 .. n do q.Qtest.Read(Data, 4) |> ignore
    float n / sw.Elapsed.TotalSeconds


/// Environment variable: generated differential cases per run (default 300).
let CasesVariable = "CONFORMANCE_QEMU_CASES"

let defaultCases () =
    match Environment.GetEnvironmentVariable CasesVariable with
    | null | "" -> 300
    | s -> Int32.Parse s

type DifferentialOutcome = { Passed: bool; Tests: int; Report: string }

/// Runs `cases` generated requests on the QEMU at `binary` (one reused process per transport) and on the
/// model with `profile`, and reports: verdict, rate, where the time went, the case distribution, and for
/// a disagreement both observations in words, the model-side scenario and the replay token.
let checkAgainst (binary: QemuBinary) (profile: Profile) (cases: int) (replay: Runner.ReplayToken option) : DifferentialOutcome =
    // QEMU's ROM image, so ROM buffers hold the same bytes on both sides
    let romImage =
        use q = new QemuProcess(binary, VirtioContext.InitialDisk 16)
        q.Qtest.Read(0xfffc0000UL, 0x40000)
    use legacy = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048, transport = VirtioTransport.Legacy)
    use modern = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048, transport = VirtioTransport.Modern)
    let deviation = KnownDeviations.idFor (KnownDeviations.load ()) "F-BLK-2"
    let qemuTime, modelTime = Diagnostics.Stopwatch(), Diagnostics.Stopwatch()
    let judge (label: string, transport: VirtioTransport, request: Request) =
        qemuTime.Start()
        let real = requestOnSession (if transport = VirtioTransport.Modern then modern else legacy) request
        qemuTime.Stop()
        modelTime.Start()
        let model, run = requestOnModel profile (Some romImage) request
        modelTime.Stop()
        let problems = differences request real model run
        let labels =
            [ sprintf "%A transport" transport
              if model.IsBroken then "device broke"
              if real.NeedsReset = Some true then "DEVICE_NEEDS_RESET seen (modern)"
              if model.Unspecified then sprintf "known deviation %s: uninitialised bounce bytes written back" deviation
              for (_, p) in places do
                  if label.Contains p && p <> "RAM" then sprintf "a buffer in %s" p ]
        let verdicts =
            if problems.IsEmpty then []
            else
                let scenario = ScenarioJson.Write(Scenario(profile, run.Scenario.Layout, run.Scenario.Ops, Description = label))
                [ Verdict.Violated(String.concat "\n" ([ sprintf "case: %s" label ] @ problems @ [ "scenario (model side):"; scenario ])) ]
        Verdict.judged labels verdicts
    // start both processes outside the timed part
    legacy.Run(toCase { Header = header 0u 1UL; Descriptors = [ 0, Header, 16u, N, 0us ]; Before = []; Look = [] }) |> ignore
    modern.Run(toCase { Header = header 0u 1UL; Descriptors = [ 0, Header, 16u, N, 0us ]; Before = []; Look = [] }) |> ignore
    let sw = Diagnostics.Stopwatch.StartNew()
    let capture, labelsOf = Runner.runProperty (Arb.fromGen genCase) judge cases replay
    let elapsed = sw.Elapsed.TotalSeconds
    let roundTrips = qtestRoundTrips legacy.Process
    let ran = capture.Cases.Count
    let perCase (t: TimeSpan) = t.TotalMilliseconds / float (max 1 ran)
    let struct (p1, s1, w1, r1), struct (p2, s2, w2, r2) = legacy.Time, modern.Time
    let sb = Text.StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore
    let passed, message, token =
        match capture.Result with
        | Some(TestResult.Passed _) -> true, "", None
        | Some(TestResult.Failed(data, _, _, outcome, _, rnd, size)) ->
            false, Runner.failureMessage data outcome, Some({ Seed = rnd.Seed; Gamma = rnd.Gamma; Size = size }: Runner.ReplayToken)
        | _ -> false, "FsCheck reported no result", None
    line (sprintf "%s  differential virtio-blk requests against %s (QEMU %O, model profile %A): %d cases"
              (if passed then "PASS" else "FAIL") binary.Path binary.Version profile ran)
    line (sprintf "      %.1f cases/s (%d cases in %.1f s) on %d QEMU processes, one per transport; raw qtest round trips on the same process: %.0f/s"
              (float ran / elapsed) ran elapsed (legacy.ProcessesStarted + modern.ProcessesStarted) roundTrips)
    line (sprintf "      per case: QEMU %.1f ms (reset and restore %.2f, request %.2f, device %.2f, read back %.2f), model %.1f ms"
              (perCase qemuTime.Elapsed) (perCase (p1 + p2)) (perCase (s1 + s2)) (perCase (w1 + w2)) (perCase (r1 + r2)) (perCase modelTime.Elapsed))
    for (label, pct) in Runner.distribution capture.Cases labelsOf |> List.truncate 12 do
        line (sprintf "      %5.1f%% %s" pct label)
    if not passed then
        line "      why:"
        for l in message.Split('\n') do line ("        " + l)
        match token with
        | Some t ->
            line (sprintf "      replay token: %O (the first case it generates is the failing one; QEMU is not shrunk)" t)
            line (sprintf "      reproduce with: dotnet run --project src/Conformance.Cli -- check --target qemu --qemu %s --replay %O" binary.Path t)
        | None -> ()
    { Passed = passed; Tests = ran; Report = sb.ToString() }
