using Conformance.Model.Scenarios;
using Conformance.Properties;
using Microsoft.FSharp.Core;

namespace Conformance.Cli;

/// <summary>
/// Concurrency counterexamples as files (ConcurrentCaseFile): saved when a concurrency property fails,
/// replayed and explained by `conformance replay FILE` and `conformance explain FILE` like scenarios.
/// </summary>
public static class ConcurrentCases
{
    /// <summary>Whether a file holds a concurrency case rather than a scenario.</summary>
    public static bool IsCaseFile(string path) => ConcurrentCaseFile.isConcurrent(CommandLine.ReadFile(path));

    public static (Catalogue.Entry Entry, string? Description, ConcurrentCaseFile.ConcurrentCase Case) Load(string path)
    {
        Tuple<string, FSharpOption<string>, ConcurrentCaseFile.ConcurrentCase> read;
        try
        {
            read = ConcurrentCaseFile.read(CommandLine.ReadFile(path));
        }
        catch (ScenarioFormatException e)
        {
            throw new UsageException($"{path}: {e.Message}");
        }
        var entry = Catalogue.find(read.Item1);
        if (FSharpOption<Catalogue.Entry>.get_IsNone(entry) || !entry.Value.IsConcurrent)
            throw new UsageException($"{path}: $.property: '{read.Item1}' is not a concurrency property (see: conformance list)");
        return (entry.Value, FSharpOption<string>.get_IsSome(read.Item2) ? read.Item2.Value : null, read.Item3);
    }

    /// <summary>`replay FILE` / `explain FILE` on a case file: the case, and the property's verdict on it
    /// (20 controlled schedules derived from the case, which repeat exactly, and 20 free runs).</summary>
    public static int Run(string path, Options options, TextWriter stdout, bool explain)
    {
        options.Allow("variant");
        var (entry, description, c) = Load(path);
        var variant = CommandLine.VariantOf(options);
        var judged = Catalogue.judgeCase(entry, variant, c);
        if (FSharpOption<Verdict.CaseResult>.get_IsNone(judged))
            throw new UsageException($"{path}: the case is not of P{entry.Number} {entry.Name}'s workload");
        var result = judged.Value;
        if (description is not null) stdout.WriteLine(description);
        stdout.WriteLine($"P{entry.Number} {entry.Name} ({entry.Title}) on the {variant}:");
        foreach (var line in ConcurrentCaseFile.render(c)) stdout.WriteLine("  " + line);
        if (explain)
        {
            stdout.WriteLine("what the runs showed:");
            foreach (var label in result.Labels) stdout.WriteLine("  " + label);
        }
        var violations = Verdict.violations(result).ToList();
        foreach (var f in Verdict.findings(result)) stdout.WriteLine($"registered finding {f}");
        stdout.WriteLine(violations.Count == 0
            ? $"P{entry.Number} {entry.Name} holds"
            : $"P{entry.Number} {entry.Name} FAILS:\n  " + string.Join("\n  ", violations.SelectMany(v => v.Split('\n'))));
        return violations.Count == 0 ? 0 : 1;
    }
}
