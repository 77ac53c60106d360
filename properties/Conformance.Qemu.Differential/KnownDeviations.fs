/// The registry of known deviations (fixtures/qemu/known-deviations.json): places where real QEMU differs
/// from the model because of a QEMU bug, registered with the pattern, both behaviours and the upstream
/// status. Differential runs report matching cases under the deviation's id instead of failing them, and
/// a live test proves QEMU still shows each one, so the registry cannot hide a change. Each is
/// version-scoped: the QEMU versions it was seen on, and those checked where it does not show; a
/// differential run on a version of neither list treats the case as a disagreement.
module Conformance.Qemu.Differential.KnownDeviations

open System.IO
open System.Text.Json

type Deviation =
    {
        Id: string
        Finding: string
        Pattern: string
        Qemu: string
        Model: string
        Upstream: string
        /// QEMU versions ("7.2.22") the deviation was seen on; it applies to their releases ("7.2").
        SeenOn: string list
        /// QEMU versions checked where it does not show.
        AbsentOn: string list
        /// QEMU versions where it cannot arise (e.g. no per-device bounce budget before 9.2).
        NotApplicableOn: string list
    }

let path () =
    Path.Combine(Conformance.Properties.Settings.root (), "fixtures", "qemu", "known-deviations.json")

/// The entries of a registry file, each read through its string fields and its arrays of versions.
let private entries (file: string) (read: (string -> string) -> (string -> string list) -> 'T) : 'T list =
    use doc = JsonDocument.Parse(File.ReadAllText file)

    [ for e in doc.RootElement.EnumerateArray() ->
          let field (name: string) =
              match e.TryGetProperty name with
              | true, v when v.ValueKind = JsonValueKind.String -> v.GetString()
              | _ -> failwithf "%s: an entry lacks the string field '%s'" file name

          let versions (name: string) =
              match e.TryGetProperty name with
              | true, v when v.ValueKind = JsonValueKind.Array -> [ for x in v.EnumerateArray() -> x.GetString() ]
              | _ -> failwithf "%s: an entry lacks the array of versions '%s'" file name

          read field versions ]

let load () : Deviation list =
    entries (path ()) (fun field versions ->
        { Id = field "id"
          Finding = field "finding"
          Pattern = field "pattern"
          Qemu = field "qemu"
          Model = field "model"
          Upstream = field "upstream"
          SeenOn = versions "seenOn"
          AbsentOn = versions "absentOn"
          NotApplicableOn = versions "notApplicableOn" })

/// "7.2" of "7.2.22": the release a version belongs to.
let release (version: string) =
    String.concat "." (version.Split('.') |> Array.truncate 2)

/// Whether the deviation behind `finding` was seen on the release of `version`.
let appliesTo (deviations: Deviation list) (finding: string) (version: System.Version) =
    let r = sprintf "%d.%d" version.Major version.Minor

    deviations
    |> List.exists (fun d -> d.Finding = finding && d.SeenOn |> List.exists (fun v -> release v = r))

/// The registered id of the deviation behind a finding (fails if the finding is not registered).
let idFor (deviations: Deviation list) (finding: string) =
    match deviations |> List.tryFind (fun d -> d.Finding = finding) with
    | Some d -> d.Id
    | None -> failwithf "finding %s is not in %s" finding (path ())

/// A bug found in QEMU itself (fixtures/qemu/findings.json), with the versions it was seen on and those
/// checked where it is absent, a minimal reproducer, and what the suite does about it.
type QemuFinding =
    { Id: string
      Title: string
      SeenOn: string list
      AbsentOn: string list
      NotApplicableOn: string list
      Reproducer: string }

let findingsPath () =
    Path.Combine(Path.GetDirectoryName(path ()), "findings.json")

let loadQemuFindings () : QemuFinding list =
    entries (findingsPath ()) (fun field versions ->
        { Id = field "id"
          Title = field "title"
          SeenOn = versions "seenOn"
          AbsentOn = versions "absentOn"
          NotApplicableOn = versions "notApplicableOn"
          Reproducer = field "reproducer" })
