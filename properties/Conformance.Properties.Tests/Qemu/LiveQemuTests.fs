/// Differential checks against real QEMU 7.2, 10.0 and 11.x (category "Qemu"): fixed virtio-blk requests,
/// each written as P26 targets-agree writes its generated cases (DifferentialCases.scenarioOf on the QEMU
/// target's machine: the layout that process prints, the device's address space, queue size and rings, and
/// VERSION_1 on the modern transport), run on QEMU (virtio-blk-pci over qtest) and on the reference model and
/// compared by Agreement.compare, as P26 compares them; and the proofs of the registered deviations and QEMU
/// findings. A missing version is skipped with the reason — except under CI, which needs all.
module Conformance.Properties.Tests.LiveQemuTests

open System
open Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets
open Conformance.Model.Virtio
open Conformance.Qemu
open Conformance.Targets.Qemu
open Conformance.Properties
open Conformance.Properties.DifferentialCases
open Conformance.Qemu.Differential.QemuDifferential
open Conformance.Properties.Tests.TestSupport

/// The installed QEMU (process-handling tests that need any one QEMU).
let qemu () = qemuFor "7.2"

let cases: (string * Request) list =
    let payload = Array.init 512 (fun i -> byte (i * 7 + 3))

    let readInto (addr: uint64) (len: uint32) =
        single (header 0u 1UL) [ 0, Header, 16u, N, 1us; 1, addr, len, W ||| N, 2us; 2, Status, 1u, W, 0us ] [] [ addr, int (min len 4096u) ]

    [ "read 512 B into RAM", readInto Data 512u
      "read 512 B into MMIO", readInto Mmio 512u
      "read 4096 B into MMIO across a page", readInto (Mmio + 0x800UL) 4096u
      "read 8192 B into MMIO", readInto Mmio 8192u
      "write 512 B from MMIO",
      single
          (header 1u 1UL)
          [ 0, Header, 16u, N, 1us
            1, Mmio + 0x2000UL, 512u, N, 2us
            2, Status, 1u, W, 0us ]
          [ Mmio + 0x2000UL, payload ]
          [ Status, 1 ]
      "read 512 B into ROM", single (header 0u 1UL) [ 0, Header, 16u, N, 1us; 1, Rom, 512u, W ||| N, 2us; 2, Status, 1u, W, 0us ] [] [ Status, 1 ]
      "write 8192 B from ROM", single (header 1u 1UL) [ 0, Header, 16u, N, 1us; 1, Rom, 8192u, N, 2us; 2, Status, 1u, W, 0us ] [] [ Status, 1 ]
      "header and data in MMIO",
      single
          (header 0u 1UL)
          [ 0, Mmio, 16u, N, 1us
            1, Mmio + 0x1000UL, 512u, W ||| N, 2us
            2, Status, 1u, W, 0us ]
          [ Mmio, header 0u 1UL ]
          [ Mmio + 0x1000UL, 512 ]
      "chain loop", single (header 0u 1UL) [ 0, Header, 16u, N, 1us; 1, Data, 512u, W ||| N, 1us ] [] [ Data, 16 ]
      "readable after writable",
      single
          (header 0u 1UL)
          [ 0, Header, 16u, N, 1us
            1, Data, 512u, W ||| N, 2us
            2, Data + 0x1000UL, 16u, N, 3us
            3, Status, 1u, W, 0us ]
          []
          [ Data, 16 ]
      "next 2000 (past any queue's end)", single (header 0u 1UL) [ 0, Header, 16u, N, 2000us ] [] [ Data, 16 ]
      // the second kick goes out without waiting for the first's bounced read (not yet used at about half of such
      // kicks, as the differential's report measures); the second request stays in RAM, so no race decides
      "a second kick while an MMIO read is in flight",
      { single
            (header 0u 1UL)
            [ 0, Header, 16u, N, 1us
              1, Mmio, 8192u, W ||| N, 2us
              2, Status, 1u, W, 0us
              3, Header + 0x40UL, 16u, N, 4us
              4, Data, 512u, W ||| N, 5us
              5, Status + 0x10UL, 1u, W, 0us ]
            [ Header + 0x40UL, header 0u 2UL ]
            [ Mmio, 4096; Data, 512; Status, 1; Status + 0x10UL, 1 ] with
          Heads = [ 0us; 3us ]
          Kicks = [ 1; 1 ]
          KicksInFlight = true }
      "zero-length data descriptor", single (header 0u 1UL) [ 0, Header, 16u, N, 1us; 1, Data, 0u, W ||| N, 2us; 2, Status, 1u, W, 0us ] [] [ Data, 16 ] ]

let private case name =
    cases |> List.find (fun (n, _) -> n = name) |> snd

/// A fixed request as P26 writes a generated case on this QEMU's machine, described by `name`.
let private scenarioOn (qemu: QemuTarget) (name: string) (r: Request) =
    scenarioOf qemu.Machine qemu.Profile name r

/// What the guest sees of a request on QEMU alone, as P26 sees it (where only QEMU's side proves something).
let private observe (qemu: QemuTarget) (name: string) (r: Request) =
    Agreement.seen (qemu.Run(scenarioOn qemu name r))

/// A request on QEMU and on the reference model (QEMU's BIOS image in pc.bios), compared as P26 compares
/// them; with the comparison in P26's words (the case, every difference, both runs side by side).
let private compareOn (qemu: QemuTarget) (name: string) (r: Request) =
    let scenario = scenarioOn qemu name r
    let reference = referenceFor qemu.Binary
    let c = Agreement.compare qemu reference scenario
    c, String.concat "\n" (Agreement.explain scenario qemu.Name reference.Name c)

type LiveCases() =
    static member Rows: obj[] seq =
        seq {
            for r in qemuReleases do
                for (n, _) in cases do
                    for t in [ "Legacy"; "Modern" ] -> [| box r; box n; box t |]
        }

    [<SkippableTheory; Trait("Category", "Qemu")>]
    [<MemberData(nameof LiveCases.Rows)>]
    member _.``QEMU and the model agree on a request``(release: string, name: string, transport: string) =
        // a fresh process per case, carrying its release's registered deviations as P26's targets do
        use qemu =
            qemuTargetFor (qemuFor release) (Enum.Parse<VirtioTransport> transport) None

        let c, report = compareOn qemu name (case name)
        Assert.True(c.Differences.IsEmpty, report)

/// The KD-1 case: a bounce transfer leaves a pattern in QEMU's heap (the out-buffer is bounced at pop
/// time even though the request then fails), then a failing read into MMIO writes its bounce buffer back.
/// Driven by hand on one process, with nothing between the two requests that could take the freed heap
/// chunk (no QMP). True when the device ends up holding bytes nobody produced for the read.
let private kd1Shows (binary: QemuBinary) (modelLen: uint32) =
    let pattern = Array.init 520 (fun i -> byte (0xa0 + i % 16))
    use q = new QemuProcess(binary, VirtioContext.InitialDisk 2048)
    let blk = LegacyVirtioBlk(q, VirtioBlkSession.RingBase)
    blk.Initialise()

    let waitFor (n: uint16) =
        let sw = Diagnostics.Stopwatch.StartNew()

        while blk.UsedIdx() <> n && sw.ElapsedMilliseconds < 3000L do
            ()

    let desc (i: int) (a, l, f, n) =
        blk.WriteDescriptor(i, VringDesc(a, l, f, n))
    // request 1: OUT of 520 bytes from MMIO holding the pattern (IOERR, but the buffer was bounced at pop)
    q.Qtest.Write(Mmio + 0x2000UL, ReadOnlySpan pattern)
    q.Qtest.Write(Header, ReadOnlySpan(header 1u 1UL))
    List.iteri desc [ Header, 16u, N, 1us; Mmio + 0x2000UL, 520u, N, 2us; Status, 1u, W, 0us ]
    blk.Publish 0us
    blk.Kick()
    waitFor 1us
    // request 2: the failing IN of 520 bytes into MMIO
    q.Qtest.Write(Header + 0x40UL, ReadOnlySpan(header 0u 1UL))

    for (i, d) in
        List.indexed
            [ Header + 0x40UL, 16u, N, 4us
              Mmio + 0x4000UL, 520u, W ||| N, 5us
              Status + 0x10UL, 1u, W, 0us ] do
        desc (i + 3) d

    blk.Publish 3us
    blk.Kick()
    waitFor 2us
    let struct (_, len) = blk.UsedElement 1
    Assert.Equal(modelLen, len) // both push the full in-length
    q.Qtest.Read(Mmio + 0x4000UL, 520) |> Array.exists ((<>) 0uy)

/// KD-2 (F-QEMU-2): a pop that fails after mapping bounce buffers, on a device with its own budget; after a
/// reset, a read that fits the budget. True when QEMU refuses it (the failed pop's bytes stayed counted).
/// The target carries no deviations: with F-QEMU-2 registered it would start the read on a fresh process.
let private kd2Shows (binary: QemuBinary) =
    use qemu = new QemuTarget(binary, VirtioTransport.Modern, Nullable 511UL)

    let failing =
        single
            (header 0u 1UL)
            [ 0, Header, 16u, N, 1us
              1, Mmio + 0x100UL, 256u, W ||| N, 2us
              2, Mmio + 0x400UL, 512u, W ||| N, 3us
              3, Status, 1u, W, 0us ]
            []
            [ Status, 1 ]

    let after =
        single
            (header 0u 1UL)
            [ 0, Header, 16u, N, 1us
              1, Mmio + 0x1000UL, 300u, W ||| N, 2us
              2, Status, 1u, W, 0us ]
            []
            [ Status, 1 ]

    Assert.True((observe qemu "a pop that fails after mapping 256 of 768 bytes" failing).Broken, "the failing pop did not fail")
    let second = observe qemu "a read of 300 bytes after the reset" after
    Assert.Equal(1, qemu.BlkSession.ProcessesStarted)
    second.Broken

/// KD-3 (F-QEMU-3): the modern transport's descriptor table in pc-testdev's MMIO, one read into RAM. True
/// when QEMU fails it (the descriptor was read partly from the wrong address). On a fresh process without the
/// registered deviations: the proof must not lean on the registry it checks.
let private kd3Shows (binary: QemuBinary) =
    let read =
        { single (header 0u 1UL) [ 0, Header, 16u, N, 1us; 1, Data, 512u, W ||| N, 2us; 2, Status, 1u, W, 0us ] [] [ Data, 512 ] with
            Rings =
                Some(
                    Mmio + 0x8000UL,
                    Conformance.Model.Virtio.VirtioConstants.LegacyAvail(0x100000UL, 1024),
                    Conformance.Model.Virtio.VirtioConstants.LegacyUsed(0x100000UL, 1024)
                ) }

    use qemu = new QemuTarget(binary, VirtioTransport.Modern)
    let c, _ = compareOn qemu "the descriptor table in MMIO, one read into RAM" read
    Assert.False(c.Reference.Broken, "the model fails a descriptor table in MMIO")
    c.Target.Broken

/// Each deviation's proof on a QEMU, or None where it cannot apply to that QEMU.
let private deviationShows (binary: QemuBinary) (deviation: string) (modelLen: uint32) =
    match deviation with
    | "KD-1" -> Some(Seq.init 5 id |> Seq.exists (fun _ -> kd1Shows binary modelLen))
    | "KD-2" when binary.DeviceHasProperty("virtio-blk-pci", "x-max-bounce-buffer-size") -> Some(kd2Shows binary)
    | "KD-2" -> None // no per-device bounce budget before 9.2
    | "KD-3" -> Some(kd3Shows binary)
    | other -> failwithf "known deviation %s has no proof in LiveQemuTests" other

/// Every entry of fixtures/qemu/known-deviations.json must show on the versions it was seen on, and not on
/// those checked where it is absent: the registry lets differential runs pass over these cases on those
/// releases, so it must not outlive the behaviour it describes; and a version in neither list is a
/// version nobody has looked at.
[<SkippableTheory; Trait("Category", "Qemu")>]
[<MemberData("Rows", MemberType = typeof<QemuReleases>)>]
let ``each known deviation shows on the versions it was seen on, and not on those checked`` (release: string) =
    let binary = qemuFor release
    let deviations = Conformance.Qemu.Differential.KnownDeviations.load ()
    Assert.Equal<string list>([ "KD-1"; "KD-2"; "KD-3" ], deviations |> List.map (fun d -> d.Id)) // a new entry needs its proof here
    // the model's side of KD-1: the failing read is pushed with its full in-length and writes back zeros nobody produced
    let failing =
        single
            (header 0u 1UL)
            [ 0, Header, 16u, N, 1us
              1, Mmio + 0x4000UL, 520u, W ||| N, 2us
              2, Status, 1u, W, 0us ]
            []
            [ Mmio + 0x4000UL, 520; Status, 1 ]

    use qemu = new QemuTarget(binary, VirtioTransport.Legacy)

    let model =
        Agreement.seen ((referenceFor binary).Run(scenarioOn qemu "a failing read of 520 bytes into MMIO" failing))

    Assert.True(model.Unproduced, "the model no longer writes back never-produced bytes here")
    Assert.True(snd model.Reads.Head |> Array.forall ((=) 0uy))
    let version = string binary.Version

    for d in deviations do
        match deviationShows binary d.Id (snd model.Used.Head) with
        | None -> Assert.True(List.contains version d.NotApplicableOn, sprintf "%s cannot arise on QEMU %s: list it in notApplicableOn" d.Id version)
        | Some shows ->
            let seen, absent = List.contains version d.SeenOn, List.contains version d.AbsentOn

            Assert.True(
                seen || absent,
                sprintf "QEMU %s is in neither seenOn nor absentOn of %s: this proof says it %s" version d.Id (if shows then "shows" else "does not show")
            )

            if seen then
                Assert.True(shows, sprintf "%s no longer shows on QEMU %s; review fixtures/qemu/known-deviations.json" d.Id version)
            else
                Assert.False(shows, sprintf "%s shows on QEMU %s, which fixtures/qemu/known-deviations.json lists as checked absent" d.Id version)

/// Every bug registered in fixtures/qemu/findings.json shows on the versions it was seen on and not on the
/// versions checked where it is absent.
[<SkippableTheory; Trait("Category", "Qemu")>]
[<MemberData("Rows", MemberType = typeof<QemuReleases>)>]
let ``each QEMU finding shows on the versions it was seen on, and not on those checked`` (release: string) =
    let binary = qemuFor release
    let findings = Conformance.Qemu.Differential.KnownDeviations.loadQemuFindings ()
    Assert.Equal<string list>([ "F-QEMU-1"; "F-QEMU-2"; "F-QEMU-3" ], findings |> List.map (fun f -> f.Id)) // a new entry needs its proof here
    let version = string binary.Version

    for f in findings do
        let shows =
            match f.Id with
            | "F-QEMU-1" -> Some binary.StatusQueryAborts
            | "F-QEMU-2" -> deviationShows binary "KD-2" 0u
            | "F-QEMU-3" -> deviationShows binary "KD-3" 0u
            | other -> failwithf "QEMU finding %s has no proof here" other

        match shows with
        | None -> Assert.True(List.contains version f.NotApplicableOn, sprintf "%s cannot arise on QEMU %s: list it in notApplicableOn" f.Id version)
        | Some s ->
            let seen, absent = List.contains version f.SeenOn, List.contains version f.AbsentOn

            Assert.True(
                seen || absent,
                sprintf "QEMU %s is in neither seenOn nor absentOn of %s: this proof says it %s" version f.Id (if s then "shows" else "does not show")
            )

            Assert.True((s = seen), sprintf "%s %s on QEMU %s, against fixtures/qemu/findings.json" f.Id (if s then "shows" else "does not show") version)

/// The modern transport is the only one where the guest sees a virtio_error: DEVICE_NEEDS_RESET (0x40) in
/// device_status. A looping chain breaks the device and sets it; the reset between cases clears both. The
/// model, set up as P26 sets up a modern device (VERSION_1 negotiated), sets it too.
[<SkippableTheory; Trait("Category", "Qemu")>]
[<MemberData("Rows", MemberType = typeof<QemuReleases>)>]
let ``modern transport: a broken device shows DEVICE_NEEDS_RESET and a reset clears it`` (release: string) =
    use qemu = qemuTargetFor (qemuFor release) VirtioTransport.Modern None
    let broken, _ = compareOn qemu "chain loop" (case "chain loop")
    Assert.Equal(Some true, broken.Target.NeedsReset)
    Assert.True(broken.Target.Broken)
    Assert.Equal(Some true, broken.Reference.NeedsReset)
    // "Looped descriptor" in a queue of 256; where the device reports 1024 (QEMU 10.0.13), the chain fills
    // the 1024-entry iovec first: "too many write descriptors in indirect table" (the model says the same)
    Assert.Contains(String.Join("\n", broken.Reference.Errors), String.Join("\n", broken.Target.Errors))

    let after, report =
        compareOn qemu "read 512 B into RAM" (case "read 512 B into RAM")

    Assert.Equal(Some false, after.Target.NeedsReset)
    Assert.True(after.Differences.IsEmpty, report)

/// Where x-query-virtio-status aborts QEMU (F-QEMU-1), the legacy transport's broken flag comes from a probe
/// request: a broken device is seen as broken, and a working one (after the reset) as working.
[<SkippableTheory; Trait("Category", "Qemu")>]
[<MemberData("Rows", MemberType = typeof<QemuReleases>)>]
let ``legacy transport: broken is observed on every version, with or without the status query`` (release: string) =
    let binary = qemuFor release
    use qemu = qemuTargetFor binary VirtioTransport.Legacy None
    let broken = observe qemu "chain loop" (case "chain loop")
    Assert.True(broken.Broken, sprintf "a looping chain did not show as broken on QEMU %O (status query aborts: %b)" binary.Version binary.StatusQueryAborts)
    let after = observe qemu "read 512 B into RAM" (case "read 512 B into RAM")
    Assert.False(after.Broken)
    Assert.Equal<(uint32 * uint32) list>([ 0u, 513u ], after.Used)
    Assert.Equal(1, qemu.BlkSession.ProcessesStarted)

/// `conformance replay FILE --target qemu`: the committed QEMU scenario (two reads in one kick, the second
/// finding the one bounce buffer taken) agrees with QEMU 7.2 on both transports.
[<SkippableTheory; Trait("Category", "Qemu")>]
[<InlineData("Legacy")>]
[<InlineData("Modern")>]
let ``a scenario file replays on QEMU and agrees`` (transport: string) =
    let binary = qemu ()

    let path =
        TestSupport.fromRoot "fixtures/qemu/scenarios/two-reads-one-bounce-buffer.json"

    let scenario =
        Conformance.Properties.LayoutFiles.parseScenarioFile path (IO.File.ReadAllText path)

    match replayOnQemu binary (Enum.Parse<VirtioTransport> transport) scenario with
    | Ok(agree, report) -> Assert.True(agree, report)
    | Error why -> failwith why

/// A QEMU that stops answering in the middle of a session: the case's observation says so (with the
/// stderr tail), the process is killed, and the next case gets a fresh one.
[<SkippableFact; Trait("Category", "Qemu")>]
let ``a hung QEMU in a session is killed and replaced`` () =
    let binary = qemu ()

    use qemu =
        new QemuTarget(binary, VirtioTransport.Legacy, timeout = Nullable(TimeSpan.FromSeconds 2.0))

    let ok = case "read 512 B into RAM"
    Assert.Empty((observe qemu "read 512 B into RAM" ok).Errors)
    let pid = qemu.BlkSession.Process.Pid
    Diagnostics.Process.Start("kill", [ "-STOP"; string pid ]).WaitForExit()
    let hung = observe qemu "read 512 B into RAM, QEMU stopped" ok
    Assert.Contains("QEMU FAILED", String.Join("\n", hung.Errors))
    Assert.False(QemuProcess.IsRunning pid, sprintf "the hung QEMU %d is still running" pid)
    let after, report = compareOn qemu "read 512 B into RAM" ok
    Assert.Equal(2, qemu.BlkSession.ProcessesStarted)
    Assert.True(after.Differences.IsEmpty, report)
