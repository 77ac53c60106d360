module Conformance.Properties.Tests.TestSupport

open System
open System.IO

/// The repository root (the folder holding Conformance.sln), found from the test assembly's location.
let repoRoot =
    lazy
        (let rec up (dir: DirectoryInfo) =
            if isNull dir then
                failwith "Conformance.sln not found above the test assembly"
            elif File.Exists(Path.Combine(dir.FullName, "Conformance.sln")) then
                dir.FullName
            else
                up dir.Parent

         up (DirectoryInfo AppContext.BaseDirectory))

let fromRoot (relative: string) = Path.Combine(repoRoot.Value, relative)

/// The QEMU releases the live tests run on: Debian's 7.2 (installed), 10.0 and 11.x (scripts/fetch-qemu).
/// Each is skipped with one line saying how to get it where it is missing, except under CI, which needs all.
let qemuReleases = [ "7.2"; "10.0"; "11." ]

let private availableQemus = lazy (Conformance.Qemu.QemuBinary.Available())

/// Test data: one row per release.
let qemuReleaseRows: obj[] seq = qemuReleases |> Seq.map (fun r -> [| box r |])

/// The QEMU of a release ("7.2", "10.0", or "11." for any 11.x); skips the test where there is none.
let qemuFor (release: string) : Conformance.Qemu.QemuBinary =
    let found =
        availableQemus.Force()
        |> Seq.tryFind (fun q -> q.Release = release || (release.EndsWith "." && q.Release.StartsWith release))

    match found with
    | Some q -> q
    | None when Environment.GetEnvironmentVariable "CI" = "true" ->
        failwithf
            "CI needs QEMU %sx: .ci/run installs 7.2 (apt-get install qemu-system-x86) and fetches 10.0 and 11.x (%s)"
            release
            Conformance.Qemu.QemuBinary.FetchHint
    | None ->
        Xunit.Skip.If(true, sprintf "no QEMU %sx here: %s" release Conformance.Qemu.QemuBinary.FetchHint)
        failwith "unreachable"

/// `[<MemberData("Rows", MemberType = typeof<QemuReleases>)>]`: one test row per QEMU release.
type QemuReleases =
    static member Rows: obj[] seq = qemuReleaseRows

/// Runs `f` with the path of a new folder under the temporary directory (named after `purpose`; `f` may
/// create it), and deletes the folder afterwards whatever `f` did.
let withTempFolder (purpose: string) (f: string -> 'a) : 'a =
    let dir =
        Path.Combine(Path.GetTempPath(), sprintf "conformance-%s-%s" purpose (Guid.NewGuid().ToString("N")))

    try
        f dir
    finally
        if Directory.Exists dir then
            Directory.Delete(dir, true)
