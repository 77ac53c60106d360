/// Against the QEMU installed on this machine (CI installs Debian's qemu-system-x86): dump the q35 and pc
/// layouts afresh and check that the model renders each tree dump exactly as that QEMU renders it.
/// Skipped, with the reason, where no QEMU is installed — except under CI, where that is a failure.
module Conformance.Properties.Tests.InstalledQemuLayoutTests

open System
open System.Diagnostics
open System.IO
open Xunit
open Conformance.Model
open Conformance.Properties.Tests.TestSupport

let private findQemu () =
    match Environment.GetEnvironmentVariable "QEMU" with
    | null | "" ->
        (Environment.GetEnvironmentVariable "PATH").Split(':')
        |> Array.map (fun d -> Path.Combine(d, "qemu-system-x86_64"))
        |> Array.tryFind File.Exists
    | q -> Some q

[<SkippableFact>]
let ``the installed QEMU's own dumps render identically in the model`` () =
    match findQemu () with
    | None when Environment.GetEnvironmentVariable "CI" = "true" ->
        failwith "CI must install QEMU: apt-get install -y --no-install-recommends qemu-system-x86"
    | None -> Skip.If(true, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    | Some qemu ->
        let out = Path.Combine(Path.GetTempPath(), "conformance-layouts-" + Guid.NewGuid().ToString("N"))
        try
            let psi = ProcessStartInfo("bash", [ fromRoot "fixtures/layouts/dump-layouts.sh"; qemu ])
            psi.Environment.["OUT"] <- out
            psi.RedirectStandardOutput <- true
            psi.RedirectStandardError <- true
            use p = Process.Start psi
            let stderr = p.StandardError.ReadToEndAsync()
            let stdout = p.StandardOutput.ReadToEndAsync()
            if not (p.WaitForExit(TimeSpan.FromMinutes 3.0)) then
                p.Kill(true)
                failwith "dump-layouts.sh did not finish within 3 minutes (QEMU hung?); killed"
            Assert.True(p.ExitCode = 0, sprintf "dump-layouts.sh failed (%d): %s" p.ExitCode stderr.Result)
            for machine in [ "q35"; "pc" ] do
                let hints = File.ReadAllLines(Path.Combine(out, machine + ".terminates.txt")) |> Array.filter (fun l -> l <> "")
                let spec = MtreeDump.Parse(File.ReadAllText(Path.Combine(out, machine + ".mtree.txt")), hints, machine)
                let mine = LayoutFixtureTests.normalise (FlatViewText.Print(MemorySystem(spec, Profile.Qemu72).AddressSpaces))
                let theirs = LayoutFixtureTests.normalise (File.ReadAllText(Path.Combine(out, machine + ".flat.txt")))
                Assert.NotEmpty theirs
                Assert.Equal<string>(theirs, mine)
            ignore stdout.Result
        finally
            if Directory.Exists out then Directory.Delete(out, true)
