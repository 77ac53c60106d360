/// The registry of known deviations (fixtures/qemu/known-deviations.json): places where real QEMU differs
/// from the model because of a QEMU bug, registered with the pattern, both behaviours and the upstream
/// status. Differential runs report matching cases under the deviation's id instead of failing them, and
/// a live test proves QEMU still shows each one, so the registry cannot hide a change.
module Conformance.Properties.KnownDeviations

open System.IO
open System.Text.Json

type Deviation =
    { Id: string
      Finding: string
      Pattern: string
      Qemu: string
      Model: string
      Upstream: string }

let path () = Path.Combine(Regression.repoRoot () |> Option.defaultValue System.Environment.CurrentDirectory, "fixtures", "qemu", "known-deviations.json")

let load () : Deviation list =
    let file = path ()
    use doc = JsonDocument.Parse(File.ReadAllText file)
    [ for e in doc.RootElement.EnumerateArray() ->
        let field (name: string) =
            match e.TryGetProperty name with
            | true, v when v.ValueKind = JsonValueKind.String -> v.GetString()
            | _ -> failwithf "%s: an entry lacks the string field '%s'" file name
        { Id = field "id"; Finding = field "finding"; Pattern = field "pattern"; Qemu = field "qemu"; Model = field "model"; Upstream = field "upstream" } ]

/// The registered id of the deviation behind a finding (fails if the finding is not registered).
let idFor (deviations: Deviation list) (finding: string) =
    match deviations |> List.tryFind (fun d -> d.Finding = finding) with
    | Some d -> d.Id
    | None -> failwithf "finding %s is not in %s" finding (path ())
