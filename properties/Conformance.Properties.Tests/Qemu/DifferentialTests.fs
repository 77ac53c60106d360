/// Generated differential cases against real QEMU (category "Qemu"): one virtio-blk request per case —
/// IN, OUT, FLUSH, GET_ID or an unsupported type; data split over 1-3 descriptors placed in RAM,
/// pc-testdev MMIO, ROM, unassigned space or across region ends; sectors in and out of range; legacy or
/// modern transport — runs on one reused QEMU per transport and on the model (QEMU's q35 layout, its ROM
/// image copied in), and every observation must be equal: used ring, broken flag, DEVICE_NEEDS_RESET,
/// error lines, and the bytes of every buffer afterwards (QemuDifferential.checkAgainst, which
/// `conformance check --target qemu` runs too).
/// CONFORMANCE_QEMU_CASES sets the number of cases (default 300).
module Conformance.Properties.Tests.DifferentialTests

open System
open Xunit
open Xunit.Abstractions
open Conformance.Properties
open Conformance.Properties.Tests.LiveQemuTests
open Conformance.Qemu.Differential.QemuDifferential

type DifferentialTests(output: ITestOutputHelper) =
    static member Releases: obj[] seq = Conformance.Properties.Tests.TestSupport.qemuReleaseRows

    static member ReleasesAndTransports: obj[] seq =
        seq {
            for r in Conformance.Properties.Tests.TestSupport.qemuReleases do
                for t in [ "Legacy"; "Modern" ] -> [| box r; box t |]
        }

    /// CONFORMANCE_QEMU_CASES (default 300) generated cases per QEMU release and transport.
    [<SkippableTheory; Trait("Category", "Qemu")>]
    [<MemberData(nameof DifferentialTests.ReleasesAndTransports)>]
    member _.generated_virtio_blk_requests_agree_with_qemu(release: string, transport: string) =
        let binary = Conformance.Properties.Tests.TestSupport.qemuFor release
        let transports = [ Enum.Parse<Conformance.Qemu.VirtioTransport> transport ]

        let outcome =
            checkAgainstOn transports Conformance.Model.Fault.None binary binary.Profile (defaultCases ()) (Runner.replayFromEnvironment ())

        output.WriteLine outcome.Report

        if not outcome.Passed then
            failwith ("\n" + outcome.Report)

        // KD-2: where this QEMU keeps a failed pop's bounce bytes, the next cases' model side gets the budget
        // less them; a disagreement there is judged again on a fresh process, and none may have been needed
        if outcome.Report.Contains "KD-2:" then
            Assert.Contains("; 0 cases disagreed on a process with kept bounce bytes", outcome.Report)

        Assert.True(
            outcome.Tests
            >= (if Runner.replayFromEnvironment().IsSome then
                    1
                else
                    defaultCases ())
        )

    /// The differential has teeth and shrinks with QEMU in the loop: a model whose bounce write mappings
    /// are written back at map time (before the disk data arrives) disagrees with QEMU on reads into MMIO,
    /// and the failing case shrinks to one request.
    [<SkippableTheory; Trait("Category", "Qemu")>]
    [<MemberData(nameof DifferentialTests.Releases)>]
    member _.a_model_bug_is_caught_and_shrunk_with_qemu_in_the_loop(release: string) =
        let binary = Conformance.Properties.Tests.TestSupport.qemuFor release

        let outcome =
            checkAgainstWith Conformance.Model.Fault.WriteBackAtMap binary binary.Profile (defaultCases ()) None

        output.WriteLine outcome.Report
        Assert.False(outcome.Passed, "the differential did not notice a model that writes bounce buffers back at map time")
        Assert.Contains("--variant WriteBackAtMap", outcome.Report)
        let shrunk = outcome.Counterexample.Value
        Assert.Equal(1, shrunk.Requests.Length)
        Assert.True(shrunk.Requests.Head.Pieces.Length <= 2, sprintf "shrunk case still has %d pieces" shrunk.Requests.Head.Pieces.Length)
