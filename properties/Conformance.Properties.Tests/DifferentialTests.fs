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
open Conformance.Properties.QemuDifferential

type DifferentialTests(output: ITestOutputHelper) =
    [<SkippableFact; Trait("Category", "Qemu")>]
    member _.generated_virtio_blk_requests_agree_with_qemu() =
        let binary = qemu ()
        let outcome = checkAgainst binary binary.Profile (defaultCases ()) (Runner.replayFromEnvironment ())
        output.WriteLine outcome.Report
        if not outcome.Passed then failwith ("\n" + outcome.Report)
        Assert.True(outcome.Tests >= (if Runner.replayFromEnvironment().IsSome then 1 else defaultCases ()))
