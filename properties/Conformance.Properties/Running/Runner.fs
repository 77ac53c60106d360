/// Runs catalogue properties with FsCheck and turns the result into something a user can act on:
/// pass/fail, case count, case distribution, and for a failure the shrunk scenario (JSON and trace),
/// the replay token and one command line that reproduces it.
module Conformance.Properties.Runner

open System
open FsCheck
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Targets
open Conformance.Properties.Catalogue

/// FsCheck's random state and size of the failing case: replaying it regenerates the same case first.
type ReplayToken =
    { Seed: uint64
      Gamma: uint64
      Size: int }

    override t.ToString() =
        sprintf "%d,%d,%d" t.Seed t.Gamma t.Size

    static member Parse(s: string) =
        match s.Split(',') with
        | [| a; b; c |] ->
            { Seed = UInt64.Parse a
              Gamma = UInt64.Parse b
              Size = Int32.Parse c }
        | _ -> failwithf "a replay token is seed,gamma,size (got '%s')" s

type Outcome =
    {
        Entry: Entry
        Profile: Profile
        /// The target's name ("reference model", "broken variant SkipUnref", …).
        Target: string
        /// Whether the reference model was checked (only its failures go to the regression corpus).
        OfReference: bool
        /// The options that select what the target was compared with (P26: a broken variant as the reference),
        /// with a leading space; "" otherwise.
        ReferenceOptions: string
        /// Why the property was not run (the capabilities the target lacks, or no reference to compare with).
        Skipped: string option
        Passed: bool
        Exhausted: bool
        Tests: int
        Shrinks: int
        /// Labels with the percentage of cases that carried them.
        Distribution: (string * float) list
        Message: string
        /// The shrunk scenario (with threads for a concurrency property).
        Counterexample: Scenario option
        Replay: ReplayToken option
        /// Where the counterexample was saved in the regression corpus, if it was.
        SavedAs: string option
        /// The first generated case (what a replay token regenerates).
        FirstCase: Scenario option
    }

/// Environment variable carrying a replay token into `dotnet test`.
let ReplayVariable = Settings.ReplayVariable

let defaultMaxTest () = Settings.maxTest ()

/// Cases per property by default: CONFORMANCE_MAX_TEST for scenario properties (5,000), and
/// CONFORMANCE_PARALLEL_CASES for concurrency properties (300; each case runs many times).
let defaultCases (entry: Entry) =
    if entry.IsConcurrent then
        Settings.parallelCases ()
    else
        Settings.maxTest ()

/// Free runs and controlled schedules per concurrent case (CONFORMANCE_PARALLEL_RUNS).
let runsPerCase () = ConcurrencyProperties.runsPerCase ()

/// The replay token in CONFORMANCE_REPLAY, if any.
let replayFromEnvironment () =
    match Environment.GetEnvironmentVariable ReplayVariable with
    | null
    | "" -> None
    | token -> Some(ReplayToken.Parse token)

let testName (entry: Entry) (profile: Profile) =
    sprintf "%s_%A" (entry.Name.Replace('-', '_')) profile

/// The options that select the target on the command line, with a leading space ("" for the reference model).
let targetOptions (target: ITarget) =
    if String.IsNullOrEmpty target.CommandLine then
        ""
    else
        " " + target.CommandLine

/// Commands that reproduce a failure exactly as it failed: the property, the profile, the variant and the
/// token (the `dotnet test` line only for the reference model, whose failure is a test failure).
let replayCommands (entry: Entry) (profile: Profile) (target: ITarget) (referenceOptions: string) (token: ReplayToken) =
    let variant = targetOptions target + referenceOptions

    [ if target.IsReference then
          sprintf
              "%s=%O dotnet test properties/Conformance.Properties.Tests --filter \"FullyQualifiedName~PropertyTests.%s\""
              ReplayVariable
              token
              (testName entry profile)
      sprintf "dotnet run --project src/Conformance.Cli -- check --property %s --profile %A%s --replay %O" entry.Name profile variant token
      sprintf "dotnet run --project src/Conformance.Cli -- replay --property %s --profile %A%s --seed %O" entry.Name profile variant token ]

/// Captures the result and the labels of every generated case (not the shrink attempts), so the case
/// distribution can be counted exactly: FsCheck's own stamps are rounded percentages that drop rare
/// classes to 0. FsCheck reports a case's arguments after judging it, so its labels are taken then and
/// the case itself is not kept (a 100,000-case run would otherwise hold every case until the end).
type Capture(labelsOf: Collections.Generic.Dictionary<obj, string list>) =
    member val Result: TestResult option = None with get, set
    /// The first generated case (what a replay token regenerates).
    member val First: obj option = None with get, set
    member val Count = 0 with get, set
    member val Labels = ResizeArray<string list>()

    interface IRunner with
        member _.OnStartFixture _ = ()

        member this.OnArguments(_, args, _) =
            for a in args do
                if this.First.IsNone then
                    this.First <- Some a

                this.Count <- this.Count + 1

                lock labelsOf (fun () ->
                    match labelsOf.TryGetValue a with
                    | true, l ->
                        this.Labels.Add l
                        labelsOf.Remove a |> ignore
                    | _ -> ())

        member _.OnShrink(_, _) = ()
        member this.OnFinished(_, result) = this.Result <- Some result

/// Labels with the percentage of generated cases that carried them.
let distribution (capture: Capture) =
    let total = float (max 1 capture.Labels.Count)

    capture.Labels
    |> Seq.collect id
    |> Seq.countBy id
    |> Seq.map (fun (label, n) -> label, 100.0 * float n / total)
    |> Seq.sortByDescending snd
    |> List.ofSeq

/// Runs FsCheck over `arb` with `judge` (every case's labels recorded for the distribution); the
/// capture holds the result, the first case and the labels.
let runProperty (arb: Arbitrary<'c>) (judge: 'c -> Verdict.CaseResult) (maxTest: int) (replay: ReplayToken option) =
    let labelsOf =
        Collections.Generic.Dictionary<obj, string list>(HashIdentity.Reference)

    let capture = Capture(labelsOf)

    let config =
        Config.Quick
            .WithMaxTest(maxTest)
            .WithQuietOnSuccess(true)
            .WithRunner(capture)
            .WithReplay(
                match replay, Settings.shard () with
                | Some r, _ ->
                    Some
                        { Rnd = Rnd(r.Seed, r.Gamma)
                          Size = Some r.Size }
                // a shard starts from a seed of its own (splitmix-style spread of K and N) with the usual sizes
                | None, Some(k, n) ->
                    Some
                        { Rnd = Rnd(0x9E3779B97F4A7C15UL * uint64 k + uint64 n * 0xBF58476D1CE4E5B9UL, 0x94D049BB133111EBUL)
                          Size = None }
                | None, None -> None
            )

    let property =
        FsCheck.FSharp.Prop.forAll arb (fun (c: 'c) ->
            // a case the target cannot run is no verdict on it: discarded (a run of nothing else gives up)
            match
                (try
                    Some(judge c)
                 with :? Conformance.Model.Targets.TargetCannotRun ->
                     None)
            with
            | Some r ->
                lock labelsOf (fun () -> labelsOf.[box c] <- Verdict.distributionLabels r)
                Verdict.toProperty r
            | None -> FsCheck.FSharp.Prop.discard ())

    Check.One(config, property)
    capture

/// Why a failed FsCheck run failed: its labels (the violations), or the exception the property threw.
let failureMessage (data: TestData) (outcome: FsCheck.Outcome) =
    match outcome with
    | _ when not data.Labels.IsEmpty -> data.Labels |> String.concat "\n"
    | FsCheck.Outcome.Failed e -> sprintf "the property threw %s: %s" (e.GetType().Name) e.Message
    | _ -> "the property does not hold"

/// Checks one catalogue entry against a target for one profile (skipped when the target cannot do or
/// show what the property needs). A property comparing targets (P26) compares `target` with `reference`,
/// and is skipped without one, or when the target is the reference itself.
let checkWith (reference: ITarget option) (entry: Entry) (profile: Profile) (target: ITarget) (maxTest: int) (replay: ReplayToken option) : Outcome =
    let missing =
        match CapabilityNames.Missing(entry.Requires, target.Capabilities), reference with
        | "", None when entry.NeedsReference -> "no reference target was given to compare with"
        | "", _ when entry.NeedsReference && target.IsReference ->
            "it compares a target with the reference model: run it on a broken variant (--variant) or on QEMU (--target qemu)"
        | "", _ -> ""
        | m, _ -> sprintf "the target cannot do or show %s" m

    // the target's machine is asked for only when a case is generated (a QEMU starts to show it)
    let generation () =
        { Profile = profile
          Machine = Option.ofObj target.Machine }

    let capture =
        if missing <> "" then
            Capture(Collections.Generic.Dictionary())
        else
            match entry.Judging with
            | OnScenarios(judge, arb) -> runProperty (arb (generation ())) (judge target) maxTest replay
            | AgainstReference(judge, arb) -> runProperty (arb (generation ())) (judge target reference.Value) maxTest replay
            | OnConcurrentCases(judge, arb) -> runProperty (arb profile) (judge (target :?> IInProcessTarget)) maxTest replay

    let asScenario (o: obj) =
        match o with
        | :? Scenario as s -> Some s
        | _ -> None

    let blank =
        { Entry = entry
          Profile = profile
          Target = target.Name
          OfReference = target.IsReference
          ReferenceOptions =
            match reference with
            | Some r when entry.NeedsReference -> targetOptions r
            | _ -> ""
          Skipped = None
          Passed = false
          Exhausted = false
          Tests = 0
          Shrinks = 0
          Distribution = []
          Message = ""
          Counterexample = None
          Replay = None
          SavedAs = None
          FirstCase = capture.First |> Option.bind asScenario }

    match capture.Result with
    | _ when missing <> "" ->
        { blank with
            Passed = true
            Skipped = Some missing
            Message = sprintf "skipped on the %s: %s" target.Name missing }
    | Some(TestResult.Passed(data, _)) ->
        { blank with
            Passed = true
            Tests = data.NumberOfTests
            Distribution = distribution capture }
    | Some(TestResult.Exhausted data) ->
        { blank with
            Exhausted = true
            Tests = data.NumberOfTests
            Distribution = distribution capture
            Message = "gave up: too many discarded cases" }
    | Some(TestResult.Failed(data, _, shrunk, outcome, _, failingRnd, size)) ->
        { blank with
            Tests = data.NumberOfTests
            Shrinks = data.NumberOfShrinks
            Message = failureMessage data outcome
            Counterexample = shrunk |> List.tryPick asScenario
            Replay =
                Some
                    { Seed = failingRnd.Seed
                      Gamma = failingRnd.Gamma
                      Size = size } }
    | None ->
        { blank with
            Message = "FsCheck reported no result" }

/// Checks one catalogue entry against a target for one profile (`checkWith` without a reference).
let check (entry: Entry) (profile: Profile) (target: ITarget) (maxTest: int) (replay: ReplayToken option) : Outcome =
    checkWith None entry profile target maxTest replay

/// Saves a reference-model failure's counterexample into the regression corpus (broken variants are
/// expected to fail and are never saved there).
let record (o: Outcome) =
    match o.Counterexample with
    | Some s when not o.Passed && o.OfReference ->
        { o with
            SavedAs = Some(Regression.save o.Entry s) }
    | _ -> o

/// Saves any failure's counterexample into `dir`.
let recordTo (dir: string) (o: Outcome) =
    match o.Counterexample with
    | Some s when not o.Passed ->
        { o with
            SavedAs = Some(Regression.saveTo dir o.Entry s) }
    | _ -> o

/// The report a user reads: verdict, distribution, and for a failure everything needed to act on it.
let report (o: Outcome) (target: ITarget) =
    let sb = Text.StringBuilder()
    let line (s: string) = sb.Append(s).Append('\n') |> ignore

    let verdict =
        if o.Skipped.IsSome then "SKIP"
        elif o.Passed then "PASS"
        elif o.Exhausted then "GAVE UP"
        else "FAIL"

    line (
        sprintf
            "%s  P%d %s [%A] on the %s: %d cases%s%s"
            verdict
            o.Entry.Number
            o.Entry.Name
            o.Profile
            o.Target
            o.Tests
            (if o.Entry.IsConcurrent then
                 sprintf " x %d free runs + %d controlled schedules" (runsPerCase ()) (runsPerCase ())
             else
                 "")
            (if o.Shrinks > 0 then
                 sprintf ", %d shrinks" o.Shrinks
             else
                 "")
    )

    line (sprintf "      %s" o.Entry.Title)

    match o.Skipped with
    | Some why -> line (sprintf "      not run: %s" why)
    | None -> ()

    for (label, pct) in o.Distribution |> List.truncate 12 do
        line (sprintf "      %5.1f%% %s" pct label)

    if not o.Passed then
        line "      why:"

        for l in o.Message.Split('\n') do
            line ("        " + l)

        match o.Counterexample with
        | Some s when s.IsConcurrent ->
            line "      shrunk case:"

            let described =
                try
                    ConcurrentScenarios.render (ConcurrentScenarios.caseOf s)
                with :? ScenarioFormatException as e ->
                    [ sprintf "(the case could not be read back: %s)" e.Message ]

            for l in described do
                line ("        " + l)

            line "      as a scenario with threads (conformance replay FILE replays it, conformance explain FILE explains it):"

            for l in (ScenarioJson.Write s).TrimEnd().Split('\n') do
                line ("        " + l)
        | Some s ->
            line "      shrunk counterexample (scenario JSON):"

            for l in (ScenarioJson.Write s).TrimEnd().Split('\n') do
                line ("        " + l)

            line "      its trace:"

            let trace =
                try
                    ScenarioTrace.Render(target.Run s)
                with e ->
                    sprintf "(the trace could not be rendered: %s)" e.Message

            for l in trace.TrimEnd().Split('\n') do
                line ("        " + l)
        | None -> ()

        match o.Replay with
        | Some token ->
            line (sprintf "      replay token: %O" token)

            if o.Entry.IsConcurrent then
                line "      (controlled schedules are derived from the case, so they replay exactly; a failure seen only"
                line "      in a free run on real threads may need several tries)"

            line "      reproduce with:"

            for c in replayCommands o.Entry o.Profile target o.ReferenceOptions token do
                line ("        " + c)
        | None -> ()

        match o.SavedAs with
        | Some path when target.IsReference ->
            line (sprintf "      saved to the regression corpus: %s (replayed by every test run; commit it once fixed)" path)
            line (sprintf "        dotnet run --project src/Conformance.Cli -- replay %s" path)
        | Some path when target.Capabilities.HasFlag Capabilities.AnyLayout ->
            line (sprintf "      saved to %s" path)
            line (sprintf "        dotnet run --project src/Conformance.Cli -- replay %s%s" path (targetOptions target))
        | Some path -> line (sprintf "      saved to %s (on this target it replays with the replay token above)" path)
        | None -> ()

        match o.Counterexample with
        | Some s when target.IsReference ->
            line "      as an F# regression test, ready to paste:"

            for l in (Regression.fsharpTest o.Entry s).Split('\n') do
                line ("        " + l)
        | _ -> ()

    sb.ToString()
