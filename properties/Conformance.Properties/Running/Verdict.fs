/// What a property concludes about one case.
module Conformance.Properties.Verdict

open FsCheck
open FsCheck.FSharp

type Verdict =
    | Violated of string
    /// QEMU itself behaves so; registered in Findings with its evidence.
    | KnownFinding of id: string * detail: string

/// A property's judgement of one case: labels for the case distribution, and its verdicts (none: holds).
type CaseResult =
    { Labels: string list
      Verdicts: Verdict list }

let judged labels verdicts =
    { Labels = labels; Verdicts = verdicts }

let violations (r: CaseResult) =
    r.Verdicts
    |> List.choose (function
        | Violated m -> Some m
        | _ -> None)

let findings (r: CaseResult) =
    r.Verdicts
    |> List.choose (function
        | KnownFinding(id, _) -> Some id
        | _ -> None)
    |> List.distinct

/// The labels a case counts under in the distribution: its own, and each registered finding it showed.
let distributionLabels (r: CaseResult) =
    r.Labels @ (findings r |> List.map (sprintf "registered finding %s"))

/// Turns a judgement into an FsCheck property: any violation fails with its messages; registered
/// findings pass. (The runner counts the case distribution itself, from distributionLabels.)
let toProperty (r: CaseResult) : Property =
    match violations r with
    | [] -> Prop.ofTestable true
    | vs -> Prop.ofTestable false |> Prop.label (String.concat "\n" (vs |> List.truncate 5))
