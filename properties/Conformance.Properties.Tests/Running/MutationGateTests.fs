/// The mutation gate CI relies on (.ci/mutation-since runs `mutation-table.fsx --gate 90`): it must fail a
/// change whose mutants are detected below the gate. Session 8 lost the gate's code in an edit of the table
/// script and CI went on printing "mutation gate: passed" at 88.89%; these tests run the script as CI does.
module Conformance.Properties.Tests.MutationGateTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Xunit
open Conformance.Properties.Tests.TestSupport

/// A Stryker report (schema 2) of one model file with the given statuses, one mutant per line.
let private report (statuses: string list) =
    let source =
        String.Join("\n", statuses |> List.mapi (fun i _ -> sprintf "int x%d = 1 + 1;" i))

    let mutants =
        statuses
        |> List.mapi (fun i status ->
            {| id = string i
               mutatorName = "Arithmetic mutation"
               replacement = "1 - 1"
               location =
                {| start =
                    {| line = i + 1
                       column = 9 + (string i).Length + 3 |}
                   ``end`` =
                    {| line = i + 1
                       column = 9 + (string i).Length + 8 |} |}
               status = status |})

    JsonSerializer.Serialize
        {| schemaVersion = "2"
           thresholds = {| high = 90; low = 80 |}
           projectRoot = "/model"
           files =
            dict
                [ "/model/Memory/Gate.cs",
                  {| language = "cs"
                     source = source
                     mutants = mutants |} ] |}

/// Runs the table script with --gate 90 on a report; its exit code and output.
let private gate (statuses: string list) =
    withTempFolder "gate" (fun dir ->
        Directory.CreateDirectory dir |> ignore
        let file = Path.Combine(dir, "mutation-report.json")
        File.WriteAllText(file, report statuses)

        let psi =
            ProcessStartInfo(
                "dotnet",
                [ "fsi"
                  fromRoot "properties/scripts/mutation-table.fsx"
                  "--gate"
                  "90"
                  file ]
            )

        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEndAsync()
        let err = p.StandardError.ReadToEndAsync()

        if not (p.WaitForExit(TimeSpan.FromMinutes 3.0)) then
            p.Kill true
            failwith "mutation-table.fsx did not finish within 3 minutes; killed"

        p.ExitCode, out.Result + err.Result)

[<Fact>]
let ``the gate fails 8 of 9 detected and passes 9 of 10, timeouts counted as detected`` () =
    let code, out = gate (List.replicate 7 "Killed" @ [ "Timeout"; "Survived" ])
    Assert.True((code = 1), out)
    Assert.Contains("gate: 88.89% of 9 mutants detected (7 killed, 1 timed out)", out)
    Assert.Contains("FAILS 90%", out)
    let code, out = gate (List.replicate 9 "Killed" @ [ "NoCoverage" ])
    Assert.True((code = 0), out)
    Assert.Contains("gate: 90.00% of 10 mutants detected", out)
