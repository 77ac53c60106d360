/// Against every QEMU this machine has (the installed one, and QEMU 10.0 and 11.x where scripts/fetch-qemu
/// has put them in the cache): dump the configurations of dump-layouts.sh afresh and check that the model
/// renders each tree dump, in every form, exactly as that QEMU renders it. A version that is missing is
/// skipped with one line saying how to get it — except under CI, where 7.2, 10.0 and 11.x are required.
module Conformance.Properties.Tests.InstalledQemuLayoutTests

open System
open System.Diagnostics
open System.IO
open Xunit
open Conformance.Model
open Conformance.Qemu
open Conformance.Properties.Tests.TestSupport

/// Runs dump-layouts.sh for one QEMU into a fresh folder (killed after 5 minutes: a QEMU that hangs).
let dumpAll (qemu: QemuBinary) =
    let out =
        Path.Combine(Path.GetTempPath(), "conformance-layouts-" + Guid.NewGuid().ToString("N"))

    let psi =
        ProcessStartInfo("bash", [ fromRoot "fixtures/layouts/dump-layouts.sh"; qemu.Path; out ])

    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    use p = Process.Start psi
    let stderr = p.StandardError.ReadToEndAsync()
    let stdout = p.StandardOutput.ReadToEndAsync()

    if not (p.WaitForExit(TimeSpan.FromMinutes 5.0)) then
        p.Kill(true)
        failwith "dump-layouts.sh did not finish within 5 minutes (QEMU hung?); killed"

    ignore stdout.Result
    out, p.ExitCode, stderr.Result

type InstalledQemuLayoutTests() =
    static member Releases: obj[] seq = qemuReleaseRows

    [<SkippableTheory>]
    [<MemberData(nameof InstalledQemuLayoutTests.Releases)>]
    member _.a_live_qemus_own_dumps_render_identically_in_the_model(release: string) =
        let qemu = qemuFor release
        let out, code, stderr = dumpAll qemu

        try
            Assert.True((code = 0), sprintf "dump-layouts.sh failed (%d) with %s: %s" code qemu.Path stderr)
            let flats = Directory.GetFiles(out, "*.flat.txt")
            Assert.NotEmpty flats

            for flat in flats do
                let config = Path.GetFileName(flat).Replace(".flat.txt", "")
                let theirs = LayoutFixtureTests.normalise (File.ReadAllText flat)

                for form in LayoutFixtureTests.forms do
                    let path = Path.Combine(out, $"{config}.{form}.txt")

                    let imported =
                        MtreeDump.Import(File.ReadAllText path, MtreeImportOptions(Source = $"{qemu.Release}/{config}.{form}"))

                    let mine = LayoutFixtureTests.normalise (LayoutFixtureTests.render imported)

                    Assert.True(
                        (theirs = mine),
                        sprintf "QEMU %O, %s.%s: the model renders it differently from QEMU's `info mtree -f`" qemu.Version config form
                    )
        finally
            if Directory.Exists out then
                Directory.Delete(out, true)
