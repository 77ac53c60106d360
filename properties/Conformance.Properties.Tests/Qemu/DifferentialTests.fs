/// P26 targets-agree against real QEMU (category "Qemu"): generated virtio-blk requests (the catalogue's
/// DifferentialCases: 1-4 requests of IN, OUT, FLUSH, GET_ID or an unsupported type; data over 1-3 descriptors
/// in RAM, pc-testdev MMIO, ROM, unassigned space or across region ends; malformed and indirect chains; rings
/// outside RAM; several kicks) run on one reused QEMU per transport and bounce budget and on the model over the
/// layout that process prints (its ROM image copied in); what the guest sees must be equal: used ring, broken
/// flag, DEVICE_NEEDS_RESET, queue indices, the bytes of every buffer, the disk and the error lines
/// (QemuDifferential.checkAgainstOn, which `conformance check --target qemu` runs too).
/// CONFORMANCE_QEMU_CASES sets the number of cases (default 300).
module Conformance.Properties.Tests.DifferentialTests

open System
open Xunit
open Xunit.Abstractions
open Conformance.Properties
open Conformance.Properties.Tests.LiveQemuTests
open Conformance.Properties.DifferentialCases
open Conformance.Qemu.Differential.QemuDifferential

/// P26 targets-agree on every QEMU found, per transport: CONFORMANCE_QEMU_CASES (default 300) generated cases
/// per release and transport, split over QEMU's default and each bounce budget on the modern transport. The
/// methods are named after the catalogue entry and the profile its releases follow (7.2: Qemu72; 10.0 and
/// 11.x: Qemu92), as for every other property.
type DifferentialPropertyTests(output: ITestOutputHelper) =
    static let rows (releases: string list) : obj[] seq =
        seq {
            for r in releases do
                for t in [ "Legacy"; "Modern" ] -> [| box r; box t |]
        }

    static member Qemu72Releases = rows [ "7.2" ]
    static member Qemu92Releases = rows [ "10.0"; "11." ]

    member private _.agree(release: string, transport: string, profile: Conformance.Model.Profile) =
        let binary = Conformance.Properties.Tests.TestSupport.qemuFor release
        Assert.Equal(profile, binary.Profile)
        let transports = [ Enum.Parse<Conformance.Qemu.VirtioTransport> transport ]

        let outcome =
            checkAgainstOn transports Conformance.Model.Fault.None binary binary.Profile (defaultCases ()) (Runner.replayFromEnvironment ())

        output.WriteLine outcome.Report

        if not outcome.Passed then
            failwith ("\n" + outcome.Report)

        Assert.True(
            outcome.Tests
            >= (if Runner.replayFromEnvironment().IsSome then
                    1
                else
                    defaultCases ())
        )

    [<SkippableTheory; Trait("Category", "Qemu")>]
    [<MemberData(nameof DifferentialPropertyTests.Qemu72Releases)>]
    member t.targets_agree_Qemu72(release: string, transport: string) =
        t.agree (release, transport, Conformance.Model.Profile.Qemu72)

    [<SkippableTheory; Trait("Category", "Qemu")>]
    [<MemberData(nameof DifferentialPropertyTests.Qemu92Releases)>]
    member t.targets_agree_Qemu92(release: string, transport: string) =
        t.agree (release, transport, Conformance.Model.Profile.Qemu92)

type DifferentialTests(output: ITestOutputHelper) =
    static member Releases: obj[] seq = Conformance.Properties.Tests.TestSupport.qemuReleaseRows

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
        // the report names the layout by file instead of inlining QEMU's dump
        Assert.Contains("\"mtree\": ", outcome.Report)
        Assert.True(outcome.Report.Length < 40_000, sprintf "the report is %d characters long" outcome.Report.Length)
        let shrunk = (specOf outcome.Counterexample.Value).Value
        Assert.Equal(1, shrunk.Requests.Length)
        Assert.True(shrunk.Requests.Head.Pieces.Length <= 2, sprintf "shrunk case still has %d pieces" shrunk.Requests.Head.Pieces.Length)
