// The mutation table from Stryker.NET's own reports, not typed by hand: one row per group of files
// (MemorySystem, bookkeeping, layout, virtio; whichever reports hold them), its score with timed-out mutants counted as detected (Stryker's) and without (a timeout on a
// busy machine is not proof that the tests would catch the mutant), and every surviving or uncovered
// mutant with the reason recorded for it in fixtures/mutation/reasons.json (or "no reason recorded").
//
//   dotnet fsi properties/scripts/mutation-table.fsx StrykerOutput/*/reports/mutation-report.json
//
// A reason is keyed by the file (relative to src/Conformance.Model), the mutator and the text of the
// mutated code, so it survives line moves; an entry no report matches is listed at the end as stale.

open System
open System.IO
open System.Text.Json

type Mutant =
    {
        File: string
        Line: int
        Mutator: string
        Replacement: string
        Original: string
        Status: string
        /// the whole mutated line, trimmed: a reason for a short piece of code (`false`) may name it
        SourceLine: string
    }

let relative (path: string) =
    let marker = "src/Conformance.Model/"
    let p = path.Replace('\\', '/')
    let i = p.IndexOf marker
    if i >= 0 then p.Substring(i + marker.Length) else p

let read (report: string) =
    use doc = JsonDocument.Parse(File.ReadAllText report)

    [ for file in doc.RootElement.GetProperty("files").EnumerateObject() do
          let source = file.Value.GetProperty("source").GetString().Split('\n')

          for m in file.Value.GetProperty("mutants").EnumerateArray() do
              let start = m.GetProperty("location").GetProperty("start")
              let finish = m.GetProperty("location").GetProperty("end")
              let line = start.GetProperty("line").GetInt32()
              let endLine = finish.GetProperty("line").GetInt32()

              let original =
                  if line = endLine && line <= source.Length then
                      let text = source.[line - 1]
                      let c0 = max 0 (start.GetProperty("column").GetInt32() - 1)
                      let c1 = min text.Length (finish.GetProperty("column").GetInt32() - 1)

                      if c1 > c0 then
                          text.Substring(c0, c1 - c0).Trim()
                      else
                          text.Trim()
                  else
                      (if line <= source.Length then
                           source.[line - 1].Trim()
                       else
                           "")
                      + " …"

              yield
                  { File = relative file.Name
                    Line = line
                    Mutator = m.GetProperty("mutatorName").GetString()
                    Replacement =
                      (match m.TryGetProperty "replacement" with
                       | true, r -> r.GetString()
                       | _ -> "")
                    Original = original
                    SourceLine =
                      (if line <= source.Length then
                           source.[line - 1].Trim()
                       else
                           "")
                    Status = m.GetProperty("status").GetString() } ]

let key (m: Mutant) =
    sprintf "%s | %s | %s" m.File m.Mutator m.Original

/// The recorded reasons: key (file | mutator | original), the whole line when the entry names one (a short
/// original such as `false` would otherwise match any later survivor of that file), and the reason.
let reasons =
    let path =
        Path.Combine(__SOURCE_DIRECTORY__, "../../fixtures/mutation/reasons.json")

    if File.Exists path then
        use doc = JsonDocument.Parse(File.ReadAllText path)

        [ for e in doc.RootElement.EnumerateArray() ->
              sprintf "%s | %s | %s" (e.GetProperty("file").GetString()) (e.GetProperty("mutator").GetString()) (e.GetProperty("original").GetString()),
              (match e.TryGetProperty "line" with
               | true, l -> Some(l.GetString())
               | _ -> None),
              e.GetProperty("reason").GetString() ]
    else
        []

let reasonFor (m: Mutant) =
    reasons
    |> List.tryFind (fun (k, line, _) -> k = key m && (line.IsNone || line = Some m.SourceLine))


// --gate N: exit 1 when fewer than N% of the reports' mutants are detected (killed or timed out; a timeout
// is a hang: stryker-config.json gives each mutant 20 s beyond the unmutated run)
let args = fsi.CommandLineArgs |> Array.skip 1 |> List.ofArray

let gate, reports =
    match args with
    | "--gate" :: n :: rest -> Some(float n), Array.ofList rest
    | _ -> None, Array.ofList args

if reports.Length = 0 then
    eprintfn "usage: dotnet fsi properties/scripts/mutation-table.fsx [--gate PERCENT] REPORT.json..."
    exit 2

/// The commit each report measured: .ci/mutation and .ci/mutation-since write it beside the report
/// (commit.txt) when the run starts; a report without it says so rather than naming today's HEAD.
let commit =
    reports
    |> Array.map (fun r ->
        let recorded = Path.Combine(Path.GetDirectoryName(Path.GetFullPath r), "commit.txt")

        if File.Exists recorded then
            File.ReadAllText(recorded).Trim()
        else
            "not recorded by the run")
    |> Array.distinct
    |> String.concat "; "

printfn "| files | score (timeouts detected) | score (timeouts not) | killed | timed out | survived | not covered |"
printfn "|-------|-------|-------|--------|-----------|----------|-------------|"

let all = ResizeArray<Mutant>()

for report in reports do
    all.AddRange(read report)

/// The groups of files the table reports on (docs/mutation-testing.md), by the first pattern a file
/// matches; a file of none is its own group.
let groups =
    [ "MemorySystem", [ "Memory/MemorySystem.cs" ]
      "bookkeeping",
      [ "Memory/MapClientList.cs"
        "Memory/DirtyMemory.cs"
        "Memory/BounceBuffer.cs"
        "Memory/ModelLock.cs"
        "Memory/LiveMappings.cs"
        "Memory/ShortLock.cs"
        "Memory/DeviceAccessList.cs" ]
      "layout", [ "Layout/FlatView.cs"; "Layout/MemoryTopology.cs"; "Memory/ByteStore.cs" ]
      "virtio", [ "Virtio/" ] ]

let groupOf (file: string) =
    groups
    |> List.tryPick (fun (name, patterns) ->
        if
            patterns
            |> List.exists (fun p -> file = p || (p.EndsWith "/" && file.StartsWith p))
        then
            Some name
        else
            None)
    |> Option.defaultValue file

for group, ms in all |> List.ofSeq |> List.groupBy (fun m -> groupOf m.File) do
    let count s =
        ms |> List.filter (fun m -> m.Status = s) |> List.length

    let killed, timeout, survived, nocov =
        count "Killed", count "Timeout", count "Survived", count "NoCoverage"

    let valid = killed + timeout + survived + nocov

    let pct n =
        if valid = 0 then
            "-"
        else
            sprintf "%.2f%%" (100.0 * float n / float valid)

    let files =
        ms
        |> List.map (fun m -> m.File)
        |> List.distinct
        |> List.sort
        |> String.concat ", "

    if valid > 0 then
        let name =
            if group = files then
                files
            else
                sprintf "%s: %s" group files

        printfn "| %s | **%s** | %s | %d | %d | %d | %d |" name (pct (killed + timeout)) (pct killed) killed timeout survived nocov

/// A table cell: pipes escaped, one line.
let cell (s: string) =
    s.Replace("|", "\\|").Replace("\n", " ")

printfn ""
printfn "Measured at commit `%s`. Undetected mutants and why they stay:" commit
printfn ""
printfn "| file:line | mutator | code -> mutant | status | reason |"
printfn "|-----------|---------|----------------|--------|--------|"

for m in
    all
    |> Seq.filter (fun m -> m.Status = "Survived" || m.Status = "NoCoverage")
    |> Seq.sortBy (fun m -> m.File, m.Line) do
    let reason =
        reasonFor m
        |> Option.map (fun (_, _, r) -> r)
        |> Option.defaultValue "**no reason recorded**"

    printfn "| %s:%d | %s | `%s` -> `%s` | %s | %s |" m.File m.Line m.Mutator (cell m.Original) (cell m.Replacement) m.Status (cell reason)

// Timed-out mutants are listed apart: the first score counts them as detected, which is right only for a
// hang (a loop that no longer ends, a lock never released); a reader can check each one is that.
let timedOut =
    all
    |> Seq.filter (fun m -> m.Status = "Timeout")
    |> Seq.sortBy (fun m -> m.File, m.Line)
    |> List.ofSeq

if not timedOut.IsEmpty then
    printfn ""
    printfn "Timed out (%d; counted as detected only in the first score):" timedOut.Length
    printfn ""
    printfn "| file:line | mutator | code -> mutant | line |"
    printfn "|-----------|---------|----------------|------|"

    for m in timedOut do
        printfn "| %s:%d | %s | `%s` -> `%s` | `%s` |" m.File m.Line m.Mutator (cell m.Original) (cell m.Replacement) (cell m.SourceLine)

let measured = all |> Seq.map (fun m -> m.File) |> Set.ofSeq

// stale: a reason for a file these reports measured that no mutant of it matches any more
for (k, line, _) in reasons do
    if
        measured.Contains(k.Split(" | ").[0])
        && not (
            all
            |> Seq.exists (fun m -> key m = k && (line.IsNone || line = Some m.SourceLine))
        )
    then
        printfn ""
        printfn "stale reason (no mutant matches it any more): %s%s" k (line |> Option.map (sprintf " (line: %s)") |> Option.defaultValue "")

match gate with
| None -> ()
| Some threshold ->
    let count s =
        all |> Seq.filter (fun m -> m.Status = s) |> Seq.length

    let detected = count "Killed" + count "Timeout"
    let valid = detected + count "Survived" + count "NoCoverage"

    if valid = 0 then
        printfn ""
        printfn "gate: no mutants in the changed code (nothing Stryker can mutate there): passed"
    else
        let score = 100.0 * float detected / float valid
        printfn ""

        printfn
            "gate: %.2f%% of %d mutants detected (%d killed, %d timed out), %.2f%% without the timeouts; %s %.0f%%"
            score
            valid
            (count "Killed")
            (count "Timeout")
            (100.0 * float (count "Killed") / float valid)
            (if score >= threshold then "passes" else "FAILS")
            threshold

        if score < threshold then
            exit 1
