/// What a property concludes about one case.
module Conformance.Properties.Verdict

open FsCheck
open FsCheck.FSharp

type Verdict =
    | Violated of string
    /// QEMU itself behaves so; registered in Findings with its evidence.
    | KnownFinding of id: string * detail: string

/// A property's judgement of one case: labels for the case distribution, and its verdicts (none: holds).
type CaseResult = { Labels: string list; Verdicts: Verdict list }

let judged labels verdicts = { Labels = labels; Verdicts = verdicts }

let violations (r: CaseResult) = r.Verdicts |> List.choose (function Violated m -> Some m | _ -> None)

let findings (r: CaseResult) = r.Verdicts |> List.choose (function KnownFinding(id, _) -> Some id | _ -> None) |> List.distinct

/// Turns a judgement into an FsCheck property: any violation fails with its messages; registered
/// findings pass but are counted in the distribution.
let toProperty (r: CaseResult) : Property =
    let labels, verdicts = r.Labels, r.Verdicts
    let violations = verdicts |> List.choose (function Violated m -> Some m | _ -> None)
    let findings = verdicts |> List.choose (function KnownFinding(id, _) -> Some id | _ -> None) |> List.distinct
    let labels = labels @ (findings |> List.map (fun id -> sprintf "registered finding %s" id))
    let body =
        match violations with
        | [] -> Prop.ofTestable true
        | vs -> Prop.ofTestable false |> Prop.label (String.concat "\n" (vs |> List.truncate 5))
    labels |> List.fold (fun p l -> Prop.classify true l p) body
