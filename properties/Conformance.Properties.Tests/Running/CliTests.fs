/// The `conformance` command as a user meets it: bad input gets one clear line and exit code 2; a
/// seeded bug gives a failure whose printed command and saved scenario both reproduce it.
module Conformance.Properties.Tests.CliTests

open System
open System.IO
open System.Text.RegularExpressions
open Xunit
open Conformance.Cli
open Conformance.Properties.Tests.TestSupport

let run (args: string list) =
    use out = new StringWriter()
    use err = new StringWriter()
    let code = CommandLine.Run(Array.ofList args, out, err)
    code, out.ToString(), err.ToString()

let private temp (name: string) (text: string) =
    let path =
        Path.Combine(Path.GetTempPath(), sprintf "conformance-%s-%s" (Guid.NewGuid().ToString("N")) name)

    File.WriteAllText(path, text)
    path

type CliTests() =
    static member BadFiles: obj[] seq =
        [ "not-json.json", "{ \"profile\": ", "$ (line"
          "unknown-profile.json", File.ReadAllText(fromRoot "fixtures/findings/F-DMA-1.json").Replace("\"Qemu72\"", "\"Qemu99\""), "$.profile"
          "bad-layout.json",
          File.ReadAllText(fromRoot "fixtures/findings/F-DMA-1.json").Replace("\"kind\": \"ram\"", "\"kind\": \"alias\", \"target\": \"nowhere\""),
          "$.layout.regions[0].subregions[0].target"
          "unknown-property.json",
          File.ReadAllText(fromRoot "fixtures/findings/F-DMA-1.json").Replace("\"profile\"", "\"property\": \"no-such-property\", \"profile\""),
          "$.property: unknown property" ]
        |> Seq.map (fun (n, t, e) -> [| box n; box t; box e |])

    [<Theory>]
    [<MemberData(nameof CliTests.BadFiles)>]
    member _.bad_scenario_file_gets_one_clear_line_and_exit_2(name: string, text: string, expected: string) =
        let path = temp name text

        try
            for verb in [ "replay"; "explain" ] do
                let code, _, err = run [ verb; path ]

                if not (verb = "explain" && expected.Contains "unknown property") then
                    Assert.Equal(2, code)
                    let lines = err.Trim().Split('\n')
                    Assert.Single(lines) |> ignore
                    Assert.Contains(expected, err)
                    Assert.DoesNotContain("   at ", err)
                    Assert.Contains(path, err)
        finally
            File.Delete path

    [<Fact>]
    member _.missing_file_unknown_verb_and_bad_options_exit_2() =
        for args in
            [ [ "replay"; "/nonexistent/x.json" ]
              [ "frobnicate" ]
              [ "check"; "--profile"; "Qemu80" ]
              [ "check"; "--bogus"; "1" ]
              [ "check"; "--property"; "nope" ]
              [ "check"; "--variant"; "NoSuchFault" ]
              [ "layout" ] ] do
            let code, _, err = run args
            Assert.Equal(2, code)
            Assert.StartsWith("conformance: ", err)

    [<Fact>]
    member _.explain_tells_what_a_skipped_unmap_leaves_behind() =
        let code, out, _ =
            run [ "explain"; fromRoot "fixtures/scenarios/what-if-unmap-never-happens.json" ]

        Assert.Equal(0, code)
        Assert.Contains("never reached nic", out)
        Assert.Contains("never marked dirty", out)
        Assert.Contains("every later bounce map in the whole machine fails", out)

    /// `--junit FILE` and `--json FILE` give CI systems the results: a failing testcase carries the report
    /// and the reproduce commands; a passing one only its size.
    [<Fact>]
    member _.check_writes_junit_and_json_reports() =
        let junit, json = temp "r.xml" "", temp "r.json" ""

        withTempFolder "saved"
        <| fun dir ->
            let code, _, _ =
                run
                    [ "check"
                      "--property"
                      "map-clients"
                      "--profile"
                      "Qemu72"
                      "--variant"
                      "UnregisterIgnored"
                      "--save"
                      dir
                      "--junit"
                      junit
                      "--json"
                      json ]

            Assert.Equal(1, code)
            let x = System.Xml.Linq.XDocument.Load junit
            let case = x.Descendants(System.Xml.Linq.XName.Get "testcase") |> Seq.exactlyOne
            Assert.Equal("P7 map-clients", case.Attribute(System.Xml.Linq.XName.Get "classname").Value)
            Assert.NotNull(case.Element(System.Xml.Linq.XName.Get "failure"))
            use j = System.Text.Json.JsonDocument.Parse(File.ReadAllText json)
            Assert.Equal(1, j.RootElement.GetProperty("failed").GetInt32())
            let reproduce = j.RootElement.GetProperty("results").[0].GetProperty("reproduce")
            Assert.True(reproduce.GetArrayLength() >= 2)
            Assert.Contains("--variant UnregisterIgnored", reproduce.[0].GetString())

            let code2, _, _ =
                run
                    [ "check"
                      "--property"
                      "map-clients"
                      "--profile"
                      "Qemu72"
                      "--max-test"
                      "50"
                      "--junit"
                      junit ]

            Assert.Equal(0, code2)
            Assert.Empty((System.Xml.Linq.XDocument.Load junit).Descendants(System.Xml.Linq.XName.Get "failure"))

    /// `--shard K/N`: a shard's cases are its own and the same every time; `merge` sums the shards' reports.
    [<Fact>]
    member _.shards_are_repeatable_and_disjoint_and_their_reports_merge() =
        let report k = temp (sprintf "s%d.json" k) ""
        let r1, r1again, r2 = report 1, report 11, report 2

        let distribution (file: string) =
            use j = System.Text.Json.JsonDocument.Parse(File.ReadAllText file)

            [ for r in j.RootElement.GetProperty("results").EnumerateArray() -> r.GetProperty("report").GetString() ]
            |> List.map (fun t -> t.Split('\n') |> Array.filter (fun l -> l.Contains "%") |> String.concat "\n")

        try
            for (k, file) in [ 1, r1; 1, r1again; 2, r2 ] do
                let code, _, _ =
                    run
                        [ "check"
                          "--property"
                          "map-clients"
                          "--shard"
                          sprintf "%d/2" k
                          "--max-test"
                          "200"
                          "--json"
                          file ]

                Assert.Equal(0, code)

            Assert.Equal<string list>(distribution r1, distribution r1again)
            Assert.NotEqual<string list>(distribution r1, distribution r2)
            let code, out, _ = run [ "merge"; r1; r2 ]
            Assert.Equal(0, code)
            Assert.Contains("PASS  P7 map-clients [Qemu72] on the reference model: 400 cases", out)
            let code2, _, err2 = run [ "check"; "--shard"; "3/2" ]
            Assert.Equal(2, code2)
            Assert.Contains("K/N", err2)
        finally
            Conformance.Properties.Settings.clearShard ()

    /// A --qemu that is no QEMU, or one that dies at start, is one clear line and exit 2, at once.
    [<Fact>]
    member _.a_qemu_that_cannot_run_is_one_line_and_exit_2() =
        let script (name: string) (body: string) =
            let path = temp name ("#!/bin/sh\n" + body + "\n")
            File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute)
            path

        let notQemu = script "not-qemu" "echo garbage"

        let diesAtStart =
            script "dies" "case \"$1\" in -version) echo 'QEMU emulator version 10.0.0';; *) echo 'no such machine' >&2; exit 1;; esac"

        for (qemu, expected) in [ notQemu, "printed no version"; diesAtStart, "exited with status 1" ] do
            let clock = Diagnostics.Stopwatch.StartNew()

            let code, _, err =
                run [ "check"; "--target"; "qemu"; "--qemu"; qemu; "--max-test"; "3" ]

            Assert.Equal(2, code)
            Assert.StartsWith("conformance: QEMU could not be run: ", err)
            Assert.Contains(expected, err)
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds 15.0, sprintf "took %O" clock.Elapsed)

    /// A concurrency counterexample is a file like any other: saved, replayed (failing again on its broken
    /// variant, holding on the reference model) and explained; bad input in it is one line with its JSON path.
    [<Fact>]
    member _.a_concurrency_counterexample_is_saved_replayed_and_explained_from_its_file() =
        withTempFolder "cases"
        <| fun dir ->
            let code, out, _ =
                run
                    [ "check"
                      "--property"
                      "bounce-budget"
                      "--profile"
                      "Qemu92"
                      "--variant"
                      "DoubleBudgetRelease"
                      "--save"
                      dir ]

            Assert.Equal(1, code)
            let file = Directory.GetFiles(dir, "bounce-budget-*.json") |> Array.exactlyOne
            Assert.Contains(sprintf "replay %s --variant DoubleBudgetRelease" file, out)
            let code2, out2, _ = run [ "replay"; file; "--variant"; "DoubleBudgetRelease" ]
            Assert.Equal(1, code2)
            Assert.Contains("P21 bounce-budget FAILS", out2)
            let code3, out3, _ = run [ "replay"; file ]
            Assert.Equal(0, code3)
            Assert.Contains("P21 bounce-budget holds", out3)
            let code4, out4, _ = run [ "explain"; file ]
            Assert.Equal(0, code4)
            Assert.Contains("what the runs showed:", out4)

            // it is a scenario with threads
            let node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText file)
            Assert.NotNull(node["threads"])
            Assert.NotNull(node["layout"])
            // the shrunk case differs from seed to seed: put the bad operations where every case has room for them
            node["ops"] <- System.Text.Json.Nodes.JsonNode.Parse """[ { "op": "unmap", "id": "m0", "percent": 101 } ]"""
            let broken = temp "bad-case.json" (node.ToJsonString())
            let code5, _, err5 = run [ "replay"; broken ]
            Assert.Equal(2, code5)
            Assert.Contains("$.ops[0].percent", err5)

            node["ops"] <-
                System.Text.Json.Nodes.JsonNode.Parse """[ { "op": "map", "id": "m0", "as": "memory", "addr": "0x3000", "len": 1, "write": true } ]"""

            let outside = temp "outside-case.json" (node.ToJsonString())
            let code6, _, err6 = run [ "explain"; outside ]
            Assert.Equal(2, code6)
            Assert.Contains("$.ops[0].addr", err6)
            // a sequential property does not take threads, nor a concurrency property a scenario without them
            node["ops"] <- System.Text.Json.Nodes.JsonNode.Parse "[]"
            node["property"] <- "map-length"
            let sequential = temp "sequential-property.json" (node.ToJsonString())
            let code7, _, err7 = run [ "replay"; sequential ]
            Assert.Equal(2, code7)
            Assert.Contains("not a concurrency property", err7)

    /// Help per verb, a version, and a suggestion for a misspelt verb or option (System.CommandLine).
    [<Fact>]
    member _.help_per_verb_version_and_suggestions() =
        let code, out, _ = run [ "layout"; "--help" ]
        Assert.Equal(0, code)
        Assert.Contains("--flat", out)
        Assert.Contains("Usage:", out)
        let code2, out2, _ = run [ "--version" ]
        Assert.Equal(0, code2)
        Assert.Matches(@"^\d+\.\d+", out2)
        let code3, _, err3 = run [ "chek" ]
        Assert.Equal(2, code3)
        Assert.Contains("did you mean check?", err3)
        let code4, _, err4 = run [ "check"; "--profle"; "Qemu72" ]
        Assert.Equal(2, code4)
        Assert.Contains("did you mean --profile?", err4)
        Assert.Single(err4.Trim().Split('\n')) |> ignore

    /// `layout TREE --flat FLAT`: "does the model see my machine as QEMU does", per address space.
    [<Fact>]
    member _.layout_with_qemus_flat_dump_reports_equal_or_the_differing_lines() =
        let dir = fromRoot "fixtures/layouts/qemu-10.0"

        let code, out, err =
            run
                [ "layout"
                  Path.Combine(dir, "q35-two-ahci.mtree.txt")
                  "--flat"
                  Path.Combine(dir, "q35-two-ahci.flat.txt") ]

        Assert.Equal(0, code)
        Assert.Equal("", err)
        Assert.Contains("AS \"ich9-ahci#2\": equal", out)
        Assert.Contains("address spaces render as QEMU renders them", out)
        // QEMU's flat view of another machine: differences, exit 1
        let code2, out2, _ =
            run
                [ "layout"
                  Path.Combine(dir, "q35.mtree.txt")
                  "--flat"
                  Path.Combine(dir, "q35-4g.flat.txt") ]

        Assert.Equal(1, code2)
        Assert.Contains("AS \"memory\": differs", out2)
        Assert.Contains("  - QEMU:  ", out2)
        Assert.Contains("  + model: ", out2)

    /// Without --flat a dump of QEMU before 11... or 11 says in one line on stderr what it assumed.
    [<Fact>]
    member _.layout_without_the_flat_dump_warns_once_and_renders() =
        let code, out, err =
            run [ "layout"; fromRoot "fixtures/layouts/qemu-11.1/pc.mtree.txt" ]

        Assert.Equal(0, code)
        Assert.Single(err.Trim().Split('\n')) |> ignore
        Assert.StartsWith("warning: ", err)
        Assert.Contains("(prio 0, container): io @", out)

    [<Fact>]
    member _.layout_bad_input_is_one_line_and_exit_2() =
        let cut =
            temp "cut.mtree.txt" (File.ReadAllText(fromRoot "fixtures/layouts/qemu-7.2/q35.mtree-D.txt").Substring(0, 700))

        let code, out, err = run [ "layout"; cut ]
        Assert.Equal(2, code)
        Assert.Equal("", out)
        Assert.Single(err.Trim().Split('\n')) |> ignore
        Assert.Matches(@"^conformance: .*cut\.mtree\.txt:\d+: ", err)

        let code2, _, err2 =
            run
                [ "layout"
                  fromRoot "fixtures/layouts/qemu-7.2/q35.mtree-D.txt"
                  "--flat"
                  fromRoot "fixtures/layouts/qemu-7.2/q35.mtree-D.txt" ]

        Assert.Equal(2, code2)
        Assert.Contains("q35.mtree-D.txt", err2)

    [<Fact>]
    member _.layout_verb_prints_qemus_flat_format() =
        let code, out, _ =
            run [ "layout"; fromRoot "fixtures/layouts/qemu-7.2/q35.mtree-D.txt" ]

        Assert.Equal(0, code)
        Assert.Contains("  00000000ff000000-00000000ff00ffff (prio 0, i/o): pc-testdev-iomem", out)

    /// Seeding a bug (a broken variant): the failure prints a command that reproduces it exactly, and the
    /// saved scenario replays it.
    [<Fact>]
    member _.a_seeded_bug_is_reproduced_by_its_printed_command_and_its_saved_scenario() =
        withTempFolder "saved"
        <| fun dir ->
            let code, out, _ =
                run
                    [ "check"
                      "--property"
                      "map-clients"
                      "--profile"
                      "Qemu72"
                      "--variant"
                      "UnregisterIgnored"
                      "--save"
                      dir ]

            Assert.Equal(1, code)
            let token = Regex.Match(out, @"replay token: (\S+)").Groups.[1].Value
            // a broken variant's failure is no test failure: no `dotnet test` line; every printed command
            // names the variant and, run as printed, fails again the same way
            Assert.DoesNotContain(sprintf "CONFORMANCE_REPLAY=%s dotnet test" token, out)
            let why = Regex.Match(out, @"why:\n\s+(.*)\n").Groups.[1].Value

            let printed =
                Regex.Matches(out, @"dotnet run --project src/Conformance.Cli -- (.*)")
                |> Seq.map (fun m -> m.Groups.[1].Value.Trim())
                |> List.ofSeq

            Assert.Equal(3, printed.Length)

            for command in printed do
                Assert.Contains("--variant UnregisterIgnored", command)

                let c, o, _ =
                    run (List.ofArray (command.Split(' ', StringSplitOptions.RemoveEmptyEntries)))

                Assert.True((c = 1), sprintf "`%s` as printed did not fail: %s" command o)

            let code2, out2, _ =
                run
                    [ "check"
                      "--property"
                      "map-clients"
                      "--profile"
                      "Qemu72"
                      "--variant"
                      "UnregisterIgnored"
                      "--replay"
                      token
                      "--save"
                      dir ]

            Assert.Equal(1, code2)
            Assert.Contains(why, out2)
            let saved = Directory.GetFiles(dir, "map-clients-*.json") |> Array.exactlyOne
            let code3, out3, _ = run [ "replay"; saved; "--variant"; "UnregisterIgnored" ]
            Assert.Equal(1, code3)
            Assert.Contains("P7 map-clients FAILS", out3)
            let code4, out4, _ = run [ "replay"; saved ]
            Assert.Equal(0, code4)
            Assert.Contains("P7 map-clients holds", out4)
