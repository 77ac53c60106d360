/// QEMU as a target (QemuTarget): the catalogue's properties judge QEMU itself, with cases generated on its
/// own machine; what it cannot do or show is skipped and says what is missing; scenarios it cannot run are
/// refused with a reason; and the finding those properties found on it shows on the versions it was seen on.
module Conformance.Properties.Tests.QemuTargetTests

open System
open Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets
open Conformance.Model.Virtio
open Conformance.Qemu
open Conformance.Targets.Qemu
open Conformance.Properties
open Conformance.Properties.Tests.TestSupport

/// Cases per property, transport and version (a third of the differential's, at least 100).
let private cases () =
    max 100 (Conformance.Qemu.Differential.QemuDifferential.defaultCases () / 3)

let private check (target: QemuTarget) (name: string) =
    let entry = (Catalogue.find name).Value
    Runner.check entry target.Binary.Profile target (cases ()) None

/// One virtio-blk request on a placement: its type, sector and data buffers; the status byte at RAM + 0x2000.
let private oneRequest (p: BlkProperties.BlkPlacement) (profile: Profile) (typ: uint32) (sector: uint64) (data: (uint64 * uint32) list) =
    BlkProperties.toScenario
        p
        profile
        [ { Type = typ
            Sector = sector
            Data = data
            Status = p.RamBase + 0x2000UL
            Payload = Array.zeroCreate (data |> List.sumBy (snd >> int))
            Framing = BlkProperties.Separate } ]

/// blk-requests (P18) and used-length-honesty (P19) hold on every QEMU, on both transports: reads return
/// the disk, writes land, status and used length are right, bounce exhaustion breaks the device where the
/// budget says; the registered findings (F-BLK-1, and F-BLK-3 from 8.0 on) are reported as such.
[<SkippableTheory; Trait("Category", "Qemu")>]
[<MemberData("Rows", MemberType = typeof<QemuReleases>)>]
let ``the virtio-blk properties hold on QEMU itself`` (release: string) =
    let binary = qemuFor release

    for transport in [ VirtioTransport.Legacy; VirtioTransport.Modern ] do
        use target = new QemuTarget(binary, transport)

        for name in [ "blk-requests"; "used-length-honesty" ] do
            let outcome = check target name
            let report = Runner.report outcome target
            Assert.True(outcome.Passed && outcome.Skipped.IsNone, report)
            Assert.Equal(cases (), outcome.Tests)
            // the cases reach what the generator aims at on this machine: bounced MMIO buffers and the device breaking
            if name = "blk-requests" then
                let share label =
                    outcome.Distribution
                    |> List.tryFind (fst >> (=) label)
                    |> Option.map snd
                    |> Option.defaultValue 0.0

                Assert.True(share "MMIO buffer" > 10.0, report)
                Assert.True(share "QEMU runs out of bounce space" > 1.0, report)

/// A property that needs what QEMU cannot do or show is reported SKIP, naming the missing capabilities,
/// with no case run and no QEMU started for it.
[<SkippableFact; Trait("Category", "Qemu")>]
let ``properties QEMU cannot serve are skipped, saying what is missing`` () =
    let binary = qemuFor "7.2"
    use target = new QemuTarget(binary, VirtioTransport.Legacy)

    for name, missing in
        [ "refcount-balance", "MemoryInternals"
          "linearizability", "InProcessInstances"
          "kick-suppression", "RingWriteOrder"
          "flattening", "AnyLayout" ] do
        let outcome = check target name
        Assert.True(outcome.Passed, outcome.Message)
        Assert.Equal(0, outcome.Tests)
        Assert.Contains(missing, outcome.Skipped.Value)
        Assert.StartsWith("SKIP", Runner.report outcome target)

    Assert.Equal(0, target.BlkSession.ProcessesStarted)

/// Operations QEMU cannot be asked to do (a map, a pop) are refused with the reason, and the process stays
/// usable for the next scenario.
[<SkippableFact; Trait("Category", "Qemu")>]
let ``a scenario QEMU cannot run is refused with the reason`` () =
    let binary = qemuFor "7.2"
    use target = new QemuTarget(binary, VirtioTransport.Legacy)
    let machine = target.Machine
    use session = target.Open(binary.Profile, machine.Layout)

    let refused =
        Assert.Throws<TargetCannotRun>(fun () -> session.Apply(MapOp("m", "memory", 0x200000UL, 16UL, true)) |> ignore)

    Assert.Contains("cannot be asked", refused.Message)

    let wrongQueue =
        Assert.Throws<TargetCannotRun>(fun () ->
            session.Apply(VirtioSetupOp(machine.Space, machine.QueueSize / 2, machine.Desc, machine.Avail, machine.Used, false, false, false, 2048, ""))
            |> ignore)

    Assert.Contains("queue of", wrongQueue.Message)
    // the next scenario runs: a GET_ID request on the machine's placement
    let p = BlkProperties.placementOf (Some machine)

    let getId =
        oneRequest p binary.Profile VirtioBlk.TypeGetId 0UL [ p.RamBase + 0x20000UL, 20u ]

    let run = target.Run getId
    Assert.False(run.Virtio.Broken, String.Join("; ", run.Virtio.Errors))
    Assert.Equal<(uint32 * uint32) list>([ 0u, 21u ], run.Virtio.Used |> Seq.map (fun struct (i, l) -> i, l) |> List.ofSeq)

/// F-BLK-3: a zone report with a 1-byte in buffer breaks the device from QEMU 8.0 on (zoned storage
/// emulation checks the buffer before VIRTIO_BLK_F_ZONED) and completes with UNSUPP before.
[<SkippableTheory; Trait("Category", "Qemu")>]
[<MemberData("Rows", MemberType = typeof<QemuReleases>)>]
let ``F-BLK-3 shows from QEMU 8.0 on and not before`` (release: string) =
    let binary = qemuFor release
    use target = new QemuTarget(binary, VirtioTransport.Legacy)
    let p = BlkProperties.placementOf (Some target.Machine)

    let zoneReport = oneRequest p binary.Profile VirtioBlk.TypeZoneReport 0UL []

    let session, run = Observations.openRun target zoneReport
    use _ = session
    let status = (Observations.readGuest session "memory" (p.RamBase + 0x2000UL) 1).[0]

    if binary.Version >= Version(8, 0) then
        Assert.True(run.Virtio.Broken, sprintf "QEMU %O did not break: status %d" binary.Version status)
        Assert.Contains("in buffer too small for zone report", run.Virtio.Errors)
        // from 9.0 the broken request is still completed with ZONE_INVALID_CMD (8.0 and 8.1 wrote nothing)
        if binary.Version >= Version(9, 0) then
            Assert.Equal(VirtioBlk.StatusZoneInvalidCmd, status)
    else
        Assert.False(run.Virtio.Broken, String.Join("; ", run.Virtio.Errors))
        Assert.Equal(VirtioBlk.StatusUnsupp, status)
    // the model says the same under the profile of this version
    let model =
        ModelTarget.Reference.Run(BlkProperties.toScenario BlkProperties.modelPlacement binary.Profile (BlkProperties.fromScenario zoneReport))

    Assert.Equal(run.Virtio.Broken, model.Virtio.Broken)

/// As a user runs it: `check --target qemu --property NAME` judges QEMU itself, prints PASS or SKIP per
/// transport with the reason, exits 0; a variant of the model makes no sense there and is refused (exit 2).
[<SkippableFact; Trait("Category", "Qemu")>]
let ``check --target qemu --property runs catalogue properties on QEMU`` () =
    let binary = qemuFor "7.2"

    let onQemu (args: string list) =
        Conformance.Properties.Tests.CliTests.run ([ "check"; "--target"; "qemu"; "--qemu"; binary.Path ] @ args)

    let code, out, err =
        onQemu [ "--property"; "blk-requests"; "--max-test"; "20"; "--transport"; "legacy" ]

    Assert.True((code = 0), out + err)
    Assert.Contains("PASS  P18 blk-requests [Qemu72] on the QEMU 7.2.22 (legacy transport): 20 cases", out)
    let code, out, _ = onQemu [ "--property"; "map-clients"; "--transport"; "modern" ]
    Assert.Equal(0, code)
    Assert.Contains("SKIP  P7 map-clients", out)
    Assert.Contains("not run: the target cannot do or show DmaMapping", out)
    let code, _, err = onQemu [ "--property"; "blk-requests"; "--variant"; "SkipUnref" ]
    Assert.Equal(2, code)
    Assert.Contains("QEMU has none", err)

/// Each session is a fresh instance: what a scenario wrote before its virtio setup is gone for the next one,
/// and a session whose process a later session took over is refused instead of driving it.
[<SkippableFact; Trait("Category", "Qemu")>]
let ``each QEMU session starts fresh, and only the latest drives the process`` () =
    let binary = qemuFor "7.2"
    use target = new QemuTarget(binary, VirtioTransport.Legacy)
    let layout = target.Machine.Layout
    let at = 0x280000UL

    do
        use first = target.Open(binary.Profile, layout)
        first.Apply(WriteOp("memory", at, [| 0xabuy; 0xcduy |])) |> ignore
        Assert.Equal<byte[]>([| 0xabuy; 0xcduy |], first.Apply(ReadOp("memory", at, 2UL)).BytesRead)

    let older = target.Open(binary.Profile, layout)
    use newer = target.Open(binary.Profile, layout)
    Assert.Equal<byte[]>([| 0uy; 0uy |], newer.Apply(ReadOp("memory", at, 2UL)).BytesRead)

    Assert.Throws<TargetCannotRun>(fun () -> older.Apply(ReadOp("memory", at, 2UL)) |> ignore)
    |> ignore

    Assert.Equal(1, target.BlkSession.ProcessesStarted)

/// Rings a case placed away from the machine's are zeroed before the next case, like every other byte it
/// wrote: a later case that reads that memory back, or whose garbage descriptor points there, must find it as
/// the model does (zero), not the last case's available ring.
[<SkippableFact; Trait("Category", "Qemu")>]
let ``rings a case moved are zeroed for the next case`` () =
    let binary = qemuFor "7.2"
    use target = new QemuTarget(binary, VirtioTransport.Modern)
    let m = target.Machine
    let desc, avail, used = 0x300000UL, 0x304000UL, 0x305000UL

    do
        use first = target.Open(binary.Profile, m.Layout)

        first.Apply(VirtioSetupOp(m.Space, m.QueueSize, desc, avail, used, false, false, true, m.DiskSectors, ""))
        |> ignore

        first.Apply(PublishOp([| 5us |])) |> ignore
        // avail->idx 1, avail->ring[0] 5
        Assert.Equal<byte[]>([| 1uy; 0uy; 5uy; 0uy |], first.Apply(ReadOp("memory", avail + 2UL, 4UL)).BytesRead)

    use next = target.Open(binary.Profile, m.Layout)
    Assert.Equal<byte[]>(Array.zeroCreate 4, next.Apply(ReadOp("memory", avail + 2UL, 4UL)).BytesRead)

/// A QEMU that stops answering part-way: the observation names the failure (with QEMU's stderr tail) and
/// the steps after it are skipped; the process is gone.
[<SkippableFact; Trait("Category", "Qemu")>]
let ``a QEMU that hangs part-way is named in the observation`` () =
    let binary = qemuFor "7.2"

    use target =
        new QemuTarget(binary, VirtioTransport.Legacy, timeout = Nullable(TimeSpan.FromSeconds 2.0))

    let p = BlkProperties.placementOf (Some target.Machine)

    let read =
        oneRequest p binary.Profile VirtioBlk.TypeIn 1UL [ p.RamBase + 0x20000UL, 512u ]

    let ops = List.ofSeq read.Ops
    use session = target.Open(binary.Profile, read.Layout)
    session.Apply ops.Head |> ignore
    let pid = target.BlkSession.Process.Pid
    Diagnostics.Process.Start("kill", [ "-STOP"; string pid ]).WaitForExit()

    for op in ops.Tail do
        session.Apply op |> ignore

    let run = session.Observe()
    Assert.NotNull(run.Failure)
    Assert.Contains("QEMU failed", run.Failure)
    Assert.Contains(run.Steps, fun s -> not (isNull s.Skipped) && s.Skipped.StartsWith "QEMU failed")
    Assert.False(QemuProcess.IsRunning pid, sprintf "the hung QEMU %d is still running" pid)

/// A target that reports a failure: a stand-in that runs the reference model and says it failed.
type private FailingTarget() =
    interface ITarget with
        member _.Name = "a failing target"
        member _.Capabilities = ModelTarget.Reference.Capabilities
        member _.CommandLine = ""
        member _.IsReference = false
        member _.Machine = null

        member _.Open(profile, layout) =
            let inner = (ModelTarget.Reference :> ITarget).Open(profile, layout)

            { new ITargetSession with
                member _.Apply op = inner.Apply op

                member _.Observe() =
                    let o = inner.Observe()
                    Observation(o.Target, o.Scenario, o.Steps, o.Mappings, o.Memory, o.Virtio, Failure = "QEMU failed (hung); stderr: …")

                member _.FlatViews() = inner.FlatViews()
                member _.Contents() = inner.Contents()
                member _.Dispose() = inner.Dispose() }

/// P18 judges a target that failed part-way on that failure, named first, instead of on what it left.
[<Fact>]
let ``a target that failed part-way is P18's verdict`` () =
    let scenario =
        oneRequest BlkProperties.modelPlacement Profile.Qemu72 VirtioBlk.TypeGetId 0UL [ 0x40000UL, 20u ]

    let result =
        Catalogue.judgeScenario (Catalogue.find "blk-requests").Value (FailingTarget()) ModelTarget.Reference scenario

    Assert.StartsWith("the target failed: QEMU failed (hung)", List.head (Verdict.violations result))

/// A case the target cannot run is discarded, not failed: a target that can run none of them makes the
/// property give up (GAVE UP, never FAIL or a shrunk "counterexample").
[<Fact>]
let ``cases a target cannot run are discarded, not failed`` () =
    let refusing =
        { new ITarget with
            member _.Name = "a refusing target"
            member _.Capabilities = ModelTarget.Reference.Capabilities
            member _.CommandLine = ""
            member _.IsReference = false
            member _.Machine = null

            member _.Open(_, _) =
                { new ITargetSession with
                    member _.Apply _ = raise (TargetCannotRun "not this")
                    member _.Observe() = raise (TargetCannotRun "not this")
                    member _.FlatViews() = raise (TargetCannotRun "not this")
                    member _.Contents() = raise (TargetCannotRun "not this")
                    member _.Dispose() = () } }

    let outcome =
        Runner.check (Catalogue.find "blk-requests").Value Profile.Qemu72 refusing 50 None

    Assert.False(outcome.Passed)
    Assert.True(outcome.Exhausted, outcome.Message)
    Assert.True(outcome.Counterexample.IsNone)
    Assert.StartsWith("GAVE UP", Runner.report outcome refusing)
