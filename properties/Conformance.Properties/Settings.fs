/// The suite's environment variables, in one place: how many cases and runs, and which case to replay.
module Conformance.Properties.Settings

open System

let private intOr (name: string) (fallback: int) =
    match Environment.GetEnvironmentVariable name with
    | null | "" -> fallback
    | s ->
        match Int32.TryParse s with
        | true, v when v > 0 -> v
        | _ -> failwithf "%s must be a positive whole number (got '%s')" name s

/// A replay token (seed,gamma,size) for `dotnet test`: the property runs that one case.
let ReplayVariable = "CONFORMANCE_REPLAY"
/// Cases per sequential property (default 1,000).
let MaxTestVariable = "CONFORMANCE_MAX_TEST"
/// Cases per concurrency property (default 200).
let ParallelCasesVariable = "CONFORMANCE_PARALLEL_CASES"
/// Free runs on real threads, and controlled schedules, per concurrency case (default 20 each).
let ParallelRunsVariable = "CONFORMANCE_PARALLEL_RUNS"

let maxTest () = intOr MaxTestVariable 1000
let parallelCases () = intOr ParallelCasesVariable 200
let parallelRuns () = intOr ParallelRunsVariable 20
