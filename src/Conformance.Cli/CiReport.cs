using System.Text.Json;
using System.Xml.Linq;

namespace Conformance.Cli;

/// <summary>One checked item of a run, as CI systems see it: a property on a profile (or a QEMU on a
/// transport), its verdict, its size, and for a failure the report text and the commands that reproduce it.</summary>
public sealed record CiResult(string Suite, string Name, string Case, bool Passed, int Cases, string Report, IReadOnlyList<string> Reproduce);

/// <summary>
/// `check --junit FILE` and `--json FILE`: the run's results for CI systems, JUnit XML (the format every CI
/// system reads: one testcase per property and profile, a failure element with the report) and JSON (the
/// same, with the reproduce commands as a list).
/// </summary>
public static class CiReport
{
    public static void Write(Options options, IReadOnlyList<CiResult> results)
    {
        try
        {
            if (options.Get("junit") is { } junit) File.WriteAllText(junit, JUnit(results));
            if (options.Get("json") is { } json) File.WriteAllText(json, Json(results));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot write the report: {e.Message}");
        }
    }

    public static string JUnit(IReadOnlyList<CiResult> results)
    {
        var suites = results.GroupBy(r => r.Suite).Select(g => new XElement("testsuite",
            new XAttribute("name", g.Key),
            new XAttribute("tests", g.Count()),
            new XAttribute("failures", g.Count(r => !r.Passed)),
            g.Select(r => new XElement("testcase",
                new XAttribute("classname", r.Name),
                new XAttribute("name", r.Case),
                new XElement("properties", new XElement("property", new XAttribute("name", "cases"), new XAttribute("value", r.Cases))),
                r.Passed ? null : new XElement("failure",
                    new XAttribute("message", FirstReason(r.Report)),
                    new XCData(r.Report + (r.Reproduce.Count > 0 ? "\nreproduce with:\n  " + string.Join("\n  ", r.Reproduce) : "")))))));
        var root = new XElement("testsuites",
            new XAttribute("name", "conformance"),
            new XAttribute("tests", results.Count),
            new XAttribute("failures", results.Count(r => !r.Passed)),
            suites);
        return new XDocument(new XDeclaration("1.0", "utf-8", null), root).ToString() + "\n";
    }

    public static string Json(IReadOnlyList<CiResult> results) =>
        JsonSerializer.Serialize(new
        {
            tool = "conformance",
            version = CommandTree.Version,
            shard = Conformance.Properties.Settings.shard() is { } sh ? $"{sh.Value.Item1}/{sh.Value.Item2}" : null,
            passed = results.Count(r => r.Passed),
            failed = results.Count(r => !r.Passed),
            results = results.Select(r => new
            {
                suite = r.Suite,
                name = r.Name,
                @case = r.Case,
                passed = r.Passed,
                cases = r.Cases,
                reproduce = r.Reproduce,
                report = r.Report,
            }),
        }, new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>
    /// `conformance merge FILE...`: the JSON reports of several shards as one: an item passed when it passed
    /// in every shard, its cases summed, the failing shards' reports and reproduce commands kept.
    /// </summary>
    public static int Merge(Options options, TextWriter stdout)
    {
        if (options.Positional.Count == 0) throw new UsageException("merge takes the JSON reports to merge");
        var all = new List<(string File, CiResult Result)>();
        foreach (var file in options.Positional)
        {
            try
            {
                using var doc = JsonDocument.Parse(CommandLine.ReadFile(file));
                foreach (var r in doc.RootElement.GetProperty("results").EnumerateArray())
                    all.Add((file, new CiResult(r.GetProperty("suite").GetString()!, r.GetProperty("name").GetString()!, r.GetProperty("case").GetString()!,
                        r.GetProperty("passed").GetBoolean(), r.GetProperty("cases").GetInt32(), r.GetProperty("report").GetString()!,
                        r.GetProperty("reproduce").EnumerateArray().Select(x => x.GetString()!).ToList())));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new UsageException($"{file}: not a report of conformance check --json ({e.Message})");
            }
        }
        var merged = all.GroupBy(x => (x.Result.Suite, x.Result.Name, x.Result.Case))
            .Select(g => new CiResult(g.Key.Suite, g.Key.Name, g.Key.Case, g.All(x => x.Result.Passed), g.Sum(x => x.Result.Cases),
                string.Join("\n", g.Where(x => !x.Result.Passed).Select(x => $"({x.File})\n{x.Result.Report}")),
                g.SelectMany(x => x.Result.Reproduce).Distinct().ToList()))
            .ToList();
        foreach (var r in merged)
            stdout.WriteLine($"{(r.Passed ? "PASS" : "FAIL")}  {r.Name} [{r.Case}] on the {r.Suite}: {r.Cases} cases");
        stdout.WriteLine($"{merged.Count(r => r.Passed)} passed, {merged.Count(r => !r.Passed)} failed (from {options.Positional.Count} reports)");
        Write(options, merged);
        return merged.All(r => r.Passed) ? 0 : 1;
    }

    /// <summary>The first line under "why:" of a report, else its first line.</summary>
    private static string FirstReason(string report)
    {
        var lines = report.Split('\n').Select(l => l.Trim()).ToList();
        int why = lines.IndexOf("why:");
        return why >= 0 && why + 1 < lines.Count ? lines[why + 1] : lines.FirstOrDefault() ?? "";
    }

    /// <summary>The `dotnet run ...` and `CONFORMANCE_REPLAY=...` lines a report prints.</summary>
    public static IReadOnlyList<string> ReproduceLines(string report) =>
        report.Split('\n').Select(l => l.Trim())
            .Where(l => l.StartsWith("dotnet run ", StringComparison.Ordinal) || l.StartsWith("CONFORMANCE_REPLAY=", StringComparison.Ordinal))
            .ToList();
}
