/// The differential check against real QEMU: P26 targets-agree run on a QEMU (legacy or modern
/// virtio-blk-pci over qtest, one reused process per transport and bounce budget, each a QemuTarget) against
/// the model (ModelTarget) over the layout that very process prints, with the queue size its device reports
/// and the profile its version implies; scenario files replayed on QEMU the same way; the version matrix.
/// Used by the `Qemu` test category and by `conformance check --target qemu` and `replay --target qemu`.
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
open Conformance.Properties.DifferentialCases

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

/// The reference model, or a broken variant of it, as the other target: QEMU's BIOS image (`rom`) in
/// pc.bios, where requests may read ROM.
let modelTargetOf (variant: Variant) (rom: byte[] option) =
    let images = Collections.Generic.Dictionary<string, byte[]>()
    rom |> Option.iter (fun image -> images.["pc.bios"] <- image)
    ModelTarget(variant, images)

let modelTarget (fault: Fault) (rom: byte[] option) = modelTargetOf (Variant.Of fault) rom

/// Bounce budgets a case may give the device (x-max-bounce-buffer-size): one byte under and over the
/// bounced sizes the requests draw (512, 4096), a page and a half, 64 KiB and 1 MiB.
let Budgets = [ 511UL; 513UL; 4095UL; 4097UL; 8192UL; 65536UL; 1048576UL ]

let AllTransports = [ VirtioTransport.Legacy; VirtioTransport.Modern ]

/// Raw qtest round trips per second on this process (a 4-byte read each): the ceiling of the differential rate.
let qtestRoundTrips (q: QemuProcess) =
    let sw = Diagnostics.Stopwatch.StartNew()
    let n = 2000

    for i in 1..n do
        q.Qtest.Read(Data, 4) |> ignore

    float n / sw.Elapsed.TotalSeconds

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
        /// The shrunk scenario (DifferentialCases.specOf gives the case it was built from).
        Counterexample: Scenario option
        Disagreements: string list
        Distribution: (string * float) list
        QueueSizes: string
        CasesPerSecond: float
        /// Kicks that did not wait for the previous ones, and at how many of them requests were still in flight.
        KicksNotWaitedFor: int * int
    }

/// The registered findings (known deviations) this QEMU's release shows, as its target reports them.
let deviationsOf (binary: QemuBinary) =
    let registry = KnownDeviations.load ()

    registry
    |> List.map (fun d -> d.Finding)
    |> List.distinct
    |> List.filter (fun f -> KnownDeviations.appliesTo registry f binary.Version)

/// The QEMU at `binary` as P26's target: one reused process on `transport` (with the bounce budget `budget`
/// where given: iommu_platform=on, modern), carrying the deviations registered for its release, so that a
/// comparison leaves out what they make unspecified and the target starts afresh where F-QEMU-2 would carry
/// a failed pop's bounce bytes into the next scenario.
let qemuTargetFor (binary: QemuBinary) (transport: VirtioTransport) (budget: uint64 option) =
    new QemuTarget(binary, transport, Option.toNullable budget, Nullable(), Array.ofList (deviationsOf binary))

/// The reference P26 compares a QEMU with: the model with that QEMU's BIOS image in pc.bios, so that ROM
/// buffers and rings hold the same bytes on both sides.
let referenceFor (binary: QemuBinary) =
    modelTarget Fault.None (Some(romImageOf binary))

/// The configurations of a QEMU a differential run covers on `transports`: each transport with QEMU's default
/// bounce budget, and the modern transport with each budget of `budgets` (iommu_platform=on with
/// x-max-bounce-buffer-size gives the device its own address space and budget).
let configurations (transports: VirtioTransport list) (budgets: uint64 list) =
    [ for t in transports do
          yield t, None

          if t = VirtioTransport.Modern then
              for b in budgets -> t, Some b ]

/// Runs P26 targets-agree (generated virtio-blk requests; the catalogue's generator and shrinker) on the QEMU at
/// `binary` against the model with `profile` (its broken variant `modelFault`, to show the differential catches
/// model bugs): one reused process per configuration (transport, bounce budget), each a target of its own whose
/// machine (layout, queue, rings) is what that process prints. Reports the verdict, rate, where the time went,
/// the case distribution, and for a disagreement the catalogue's report of the shrunk scenario.
let checkAgainstOn
    (transports: VirtioTransport list)
    (modelFault: Fault)
    (binary: QemuBinary)
    (profile: Profile)
    (cases: int)
    (replay: Runner.ReplayToken option)
    : DifferentialOutcome =
    let entry = (Catalogue.find "targets-agree").Value
    let reference = modelTarget modelFault (Some(romImageOf binary))
    let deviations = deviationsOf binary

    let budgets =
        if binary.DeviceHasProperty("virtio-blk-pci", "x-max-bounce-buffer-size") then
            Budgets
        else
            []

    let configs = configurations transports budgets

    // a transport with budgets spends a quarter of its cases on QEMU's default budget, the rest spread over the budgets
    let casesFor (transport, budget) =
        let n = configs |> List.filter (fun (t, _) -> t = transport) |> List.length

        let each = max 1 ((cases - cases / 4) / max 1 (n - 1))

        match budget with
        | _ when n = 1 -> cases
        | None -> max 1 (cases - each * (n - 1))
        | Some _ -> each

    let targets = ResizeArray<(VirtioTransport * uint64 option) * QemuTarget>()

    use _ =
        { new IDisposable with
            member _.Dispose() =
                for (_, t) in targets do
                    t.Dispose() }

    let startTime = Diagnostics.Stopwatch()
    let sw = Diagnostics.Stopwatch.StartNew()

    // the configurations in turn, up to the first that disagrees (its shrunk case is the report's counterexample)
    let runs =
        [ let mutable agreed = true

          for config in configs do
              if agreed then
                  let transport, budget = config
                  startTime.Start()

                  let target = qemuTargetFor binary transport budget

                  targets.Add((config, target))
                  // the machine comes from the running process: started outside the cases
                  target.Machine |> ignore
                  startTime.Stop()

                  let outcome =
                      Runner.checkWith (Some reference) entry profile target (casesFor config) replay

                  agreed <- outcome.Passed && outcome.Skipped.IsNone
                  yield config, target, outcome ]

    let elapsed = sw.Elapsed.TotalSeconds
    let ran = runs |> List.sumBy (fun (_, _, o) -> o.Tests)
    let passed = runs |> List.forall (fun (_, _, o) -> o.Passed && o.Skipped.IsNone)
    let perCase (t: TimeSpan) = t.TotalMilliseconds / float (max 1 ran)

    let sum (f: VirtioBlkSession -> TimeSpan) =
        targets
        |> Seq.sumBy (fun (_, t) -> (f t.BlkSession).Ticks)
        |> TimeSpan.FromTicks

    let prepare, wait, readBack =
        sum (fun s -> let struct (p, _, _) = s.Time in p), sum (fun s -> let struct (_, w, _) = s.Time in w), sum (fun s -> let struct (_, _, r) = s.Time in r)

    let processes = targets |> Seq.sumBy (fun (_, t) -> t.BlkSession.ProcessesStarted)

    let queueSizes =
        targets
        |> Seq.map (fun (_, t) -> sprintf "%A %d" t.Transport t.Machine.QueueSize)
        |> Seq.distinct
        |> String.concat ", "

    // every run's labels, weighted by its cases, with the configuration it ran on
    let distribution =
        runs
        |> List.collect (fun ((transport, budget), _, o) ->
            let configLabels =
                [ sprintf "%A transport" transport
                  match budget with
                  | Some b -> sprintf "bounce budget %d (device address space)" b
                  | None when not budgets.IsEmpty && transport = VirtioTransport.Modern -> "default bounce budget (address_space_memory)"
                  | None -> () ]

            [ for l in configLabels -> l, 100.0 * float o.Tests
              for (l, pct) in o.Distribution -> l, pct * float o.Tests ])
        |> List.groupBy fst
        |> List.map (fun (l, xs) -> l, (xs |> List.sumBy snd) / float (max 1 ran))
        |> List.sortByDescending snd

    let failing =
        runs |> List.tryFind (fun (_, _, o) -> not o.Passed || o.Skipped.IsSome)

    let disagreements =
        match failing with
        | Some(_, _, o) ->
            o.Message.Split('\n')
            |> Array.filter (fun l -> l <> "" && not (l.StartsWith "case:" || l.StartsWith " " || l.StartsWith "≠"))
            |> Array.map Agreement.observationOf
            |> Array.distinct
            |> List.ofArray
        | None -> []

    let sb = Text.StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore

    line (
        sprintf
            "%s  differential virtio-blk requests (P26 %s) against %s (QEMU %O, %s transport, model profile %A%s): %d cases"
            (if passed then "PASS" else "FAIL")
            entry.Name
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
            "      %.1f cases/s (%d cases in %.1f s, %.1f s of it starting processes) on %d QEMU processes, one per transport and bounce budget%s"
            (float ran / elapsed)
            ran
            elapsed
            startTime.Elapsed.TotalSeconds
            processes
            (match targets |> Seq.tryHead with
             | Some(_, t) when not (isNull t.BlkSession.Process) ->
                 sprintf "; raw qtest round trips on one of them: %.0f/s" (qtestRoundTrips t.BlkSession.Process)
             | _ -> "")
    )

    line (
        sprintf
            "      per case: QEMU reset and restore %.2f ms, device %.2f, read back %.2f, the rest (the guest's writes and kicks, the model) %.2f"
            (perCase prepare)
            (perCase wait)
            (perCase readBack)
            (max
                0.0
                (1000.0 * elapsed / float (max 1 ran)
                 - perCase prepare
                 - perCase wait
                 - perCase readBack))
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
        targets |> Seq.sumBy (fun (_, t) -> t.BlkSession.KicksNotWaitedFor), targets |> Seq.sumBy (fun (_, t) -> t.BlkSession.KicksWithRequestsInFlight)

    if notWaited > 0 then
        line (
            sprintf
                "      kicks that did not wait for the previous ones: %d; requests still in flight at %d of them (not yet used, by the used index, when the next kick went out: popped, or not yet popped by a kick QEMU had still to handle)"
                notWaited
                stillInFlight
        )

    if List.contains "F-QEMU-2" deviations && not budgets.IsEmpty then
        line (
            sprintf
                "      KD-2 (F-QEMU-2): this QEMU keeps bounce bytes of failed pops across device resets; a fresh process followed each of the %d cases whose failed pops may have kept bounce bytes (%d processes started)"
                (targets |> Seq.sumBy (fun (_, t) -> t.RestartsForKeptBounceBytes))
                processes
        )

    if List.contains "F-QEMU-3" deviations then
        line "      every ring in RAM: known deviation KD-3 (F-QEMU-3: this QEMU reads and writes rings outside RAM at the wrong address)"

    for (label, pct) in distribution |> List.truncate 40 do
        line (sprintf "      %5.1f%% %s" pct label)

    for (_, target, o) in runs do
        if not o.Passed || o.Skipped.IsSome then
            for l in (Runner.report o target).TrimEnd().Split('\n') do
                line ("    " + l)

    { Passed = passed
      Tests = ran
      Report = sb.ToString()
      Counterexample = failing |> Option.bind (fun (_, _, o) -> o.Counterexample)
      Disagreements = disagreements
      Distribution = distribution
      QueueSizes = queueSizes
      CasesPerSecond = float ran / elapsed
      KicksNotWaitedFor = notWaited, stillInFlight }

let checkAgainstWith modelFault binary profile cases replay =
    checkAgainstOn AllTransports modelFault binary profile cases replay

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

/// The guest addresses a scenario names (its writes, reads and descriptors, first and last byte of each).
let private addressesOf (s: Scenario) =
    let span (a: uint64) (n: uint64) =
        [ yield a
          if n > 0UL then
              yield a + n - 1UL ]

    [ for op in s.Ops do
          match op with
          | :? WriteOp as w -> yield! span w.Addr (uint64 w.Data.Length)
          | :? ReadOp as r -> yield! span r.Addr r.Len
          | :? DescriptorsOp as d ->
              for e in d.Entries do
                  yield! span e.Addr (uint64 e.Len)
          | _ -> () ]

/// A scenario written without read-backs (as the differential printed them before P26) gets the guest reading
/// back every device-writable buffer its ring descriptors name (the first 4 KiB of each).
let private withReadBacks (s: Scenario) =
    if s.Ops |> Seq.exists (fun o -> o :? ReadOp) then
        s
    else
        let reads =
            [ for op in s.Ops do
                  match op with
                  | :? DescriptorsOp as d when not d.Table.HasValue ->
                      for e in d.Entries do
                          if e.Flags &&& W <> 0us && e.Len > 0u then
                              yield ReadOp("memory", e.Addr, uint64 (min e.Len 4096u)) :> ScenarioOp
                  | _ -> () ]

        Scenario(s.Profile, s.Layout, Array.append (Array.ofSeq s.Ops) (Array.ofList reads), Description = s.Description, LayoutFrom = s.LayoutFrom)

/// Runs a scenario file on QEMU (one fresh process on the given transport; with the bounce budget its layout
/// gives the device's own address space) and on the reference model, and compares them as P26 does: both
/// runs side by side, every difference in words, and the model's trace. Error: not realisable on this QEMU.
let replayOnQemu (binary: QemuBinary) (transport: VirtioTransport) (s: Scenario) : Result<bool * string, string> =
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

    use qemu = qemuTargetFor binary transport budget

    match layoutDisagreement s.Layout qemu.Machine.Layout (addressesOf s) with
    | Some where -> Error(sprintf "its layout is not this QEMU's: %s" where)
    | None ->
        let s = withReadBacks s

        match
            (try
                Ok(Agreement.compare qemu (referenceFor binary) s)
             with :? TargetCannotRun as e ->
                 Error e.Message)
        with
        | Error why -> Error why
        | Ok c ->
            let lines =
                [ yield! Agreement.sideBySide qemu.Name c.Target (sprintf "model (%A)" s.Profile) c.Reference
                  yield ""
                  if c.Differences.IsEmpty then
                      yield "QEMU and the model agree."
                  else
                      yield "differences:"

                      for p in c.Differences do
                          yield "  " + p

                  if c.Reference.Unproduced && c.UninitialisedBounce then
                      yield
                          sprintf
                              "  (known deviation %s applies: bytes the model marks never-produced are not compared)"
                              (KnownDeviations.idFor (KnownDeviations.load ()) "F-BLK-2")
                  yield ""
                  yield "the model's trace:"
                  yield ScenarioTrace.Render c.ReferenceRun ]

            Ok(c.Differences.IsEmpty, String.Join("\n", lines) + "\n")

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
            sprintf "agree; KD-1 in %d cases" (c.Runs |> List.sumBy (fun (_, o) -> share o "known deviation F-BLK-2"))
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

                  if KnownDeviations.appliesTo deviations "F-QEMU-2" c.Binary.Version then
                      sprintf "%d cases; KD-2: a fresh process after each case whose failed pop kept bounce bytes" n
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
