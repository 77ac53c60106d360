/// The suite's environment variables, in one place: how many cases and runs, and which case to replay.
module Conformance.Properties.Settings

open System

let private intOr (name: string) (fallback: int) =
    match Environment.GetEnvironmentVariable name with
    | null
    | "" -> fallback
    | s ->
        match Int32.TryParse s with
        | true, v when v > 0 -> v
        | _ -> failwithf "%s must be a positive whole number (got '%s')" name s

/// A replay token (seed,gamma,size) for `dotnet test`: the property runs that one case.
let ReplayVariable = "CONFORMANCE_REPLAY"
/// Cases per sequential property (default 5,000).
let MaxTestVariable = "CONFORMANCE_MAX_TEST"
/// Cases per concurrency property (default 300).
let ParallelCasesVariable = "CONFORMANCE_PARALLEL_CASES"
/// Free runs on real threads, and controlled schedules, per concurrency case (default 20 each).
let ParallelRunsVariable = "CONFORMANCE_PARALLEL_RUNS"

let maxTest () = intOr MaxTestVariable 5000
let parallelCases () = intOr ParallelCasesVariable 300
let parallelRuns () = intOr ParallelRunsVariable 20

/// Where the suite's data lives (fixtures/: the regression corpus, QEMU layouts and registries; snapshots/).
let RootVariable = "CONFORMANCE_ROOT"

let mutable private rootOverride: string option = None

/// Sets the root for this process (the CLI's --root DIR).
let setRoot (dir: string) =
    rootOverride <- Some(IO.Path.GetFullPath dir)

/// The repository this library was built from, recorded at build time (not searched for), if it is still there.
let private builtFrom =
    lazy
        (Reflection.Assembly.GetExecutingAssembly().GetCustomAttributes(typeof<Reflection.AssemblyMetadataAttribute>, false)
         |> Seq.cast<Reflection.AssemblyMetadataAttribute>
         |> Seq.tryFind (fun a -> a.Key = "Conformance.RepositoryRoot")
         |> Option.map (fun a -> IO.Path.GetFullPath a.Value)
         |> Option.filter (fun d -> IO.Directory.Exists(IO.Path.Combine(d, "fixtures"))))

/// The root, in this order: --root, CONFORMANCE_ROOT, the repository the library was built from, the
/// current directory.
let root () =
    match rootOverride with
    | Some r -> r
    | None ->
        match Environment.GetEnvironmentVariable RootVariable with
        | null
        | "" -> builtFrom.Force() |> Option.defaultValue Environment.CurrentDirectory
        | r -> IO.Path.GetFullPath r

/// A path under the root.
let underRoot (relative: string) = IO.Path.Combine(root (), relative)

/// One shard of a run split across machines: "K/N" (1 <= K <= N). Every property then runs its cases from a
/// seed of its own shard, so shards draw disjoint cases and a shard's run is repeatable; no shard: random.
let ShardVariable = "CONFORMANCE_SHARD"

let mutable private shardOverride: (int * int) option = None

let parseShard (text: string) =
    match text.Split('/') with
    | [| k; n |] ->
        match Int32.TryParse k, Int32.TryParse n with
        | (true, k), (true, n) when n >= 1 && k >= 1 && k <= n -> k, n
        | _ -> failwithf "a shard is K/N with 1 <= K <= N (got '%s')" text
    | _ -> failwithf "a shard is K/N with 1 <= K <= N (got '%s')" text

/// Sets the shard for this process (the CLI's --shard K/N); clearShard goes back to CONFORMANCE_SHARD or none.
let setShard (k: int, n: int) = shardOverride <- Some(k, n)

let clearShard () = shardOverride <- None

let shard () =
    match shardOverride with
    | Some s -> Some s
    | None ->
        match Environment.GetEnvironmentVariable ShardVariable with
        | null
        | "" -> None
        | s -> Some(parseShard s)
