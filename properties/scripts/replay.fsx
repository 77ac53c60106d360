// Replays one case and prints its trace and verdict.
//   dotnet fsi properties/scripts/replay.fsx fixtures/regressions/map-length-1234abcd.json
//   dotnet fsi properties/scripts/replay.fsx --property map-length --profile Qemu72 --seed SEED,GAMMA,SIZE [--variant FAULT]
// (build first: dotnet build Conformance.sln)
#load "Assemblies.fsx"

open System
open System.IO
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties

let args = fsi.CommandLineArgs |> Array.skip 1

let option name =
    args
    |> Array.tryFindIndex ((=) ("--" + name))
    |> Option.bind (fun i -> Array.tryItem (i + 1) args)

let variant =
    option "variant"
    |> Option.map (fun v -> Enum.Parse<Fault>(v, true))
    |> Option.defaultValue Fault.None

let impl = Implementation.ofFault variant

match option "seed", args |> Array.tryFind (fun a -> not (a.StartsWith "--") && File.Exists a) with
| Some seed, _ ->
    let entry =
        (Catalogue.find (
            option "property"
            |> Option.defaultWith (fun () -> failwith "--seed needs --property")
        ))
            .Value

    let profile =
        Enum.Parse<Profile>(option "profile" |> Option.defaultValue "Qemu72", true)

    let outcome =
        Runner.check entry profile impl 1 (Some(Runner.ReplayToken.Parse seed))

    outcome.FirstCase
    |> Option.iter (fun s -> printf "%s%s" (ScenarioJson.Write s) (ScenarioTrace.Render(impl.Run s)))

    printf "%s" (Runner.report outcome impl)
| None, Some file ->
    let scenario = ScenarioJson.Parse(File.ReadAllText file)
    printf "%s" (ScenarioTrace.Render(impl.Run scenario))

    match option "property" |> Option.orElse (Option.ofObj scenario.Property) with
    | Some name ->
        let entry = (Catalogue.find name).Value
        let result = entry.Judge impl scenario

        for f in Verdict.findings result do
            printfn "registered finding %s" f

        match Verdict.violations result with
        | [] -> printfn "P%d %s holds" entry.Number entry.Name
        | vs -> printfn "P%d %s FAILS:\n  %s" entry.Number entry.Name (String.concat "\n  " vs)
    | None -> ()
| None, None -> eprintfn "usage: replay.fsx FILE | --property P --profile Qemu72|Qemu92 --seed S,G,SIZE [--variant FAULT]"
