using Conformance.Model.Scenarios;
using Conformance.Properties;
using Microsoft.FSharp.Core;

namespace Conformance.Cli;

/// <summary>
/// Scenarios with threads (the cases of the concurrency properties, ConcurrentScenarios): saved when a
/// concurrency property fails, replayed and explained by `conformance replay FILE` and `conformance explain
/// FILE` like every scenario, by the property the file names.
/// </summary>
public static class ConcurrentCases
{
    /// <summary>`replay FILE` / `explain FILE` on a scenario with threads: the case, and the property's verdict
    /// on it (controlled schedules derived from the case, which repeat exactly, and free runs).</summary>
    public static int Run(string path, Scenario scenario, Options options, TextWriter stdout, bool explain)
    {
        var name = options.Get("property") ?? scenario.Property
            ?? throw new UsageException($"{path}: $.property: a scenario with threads names the concurrency property (P20-P24) that judges it");
        var found = Catalogue.find(name);
        if (FSharpOption<Catalogue.Entry>.get_IsNone(found) || !found.Value.IsConcurrent)
            throw new UsageException($"{path}: $.property: '{name}' is not a concurrency property (see: conformance list)");
        var entry = found.Value;
        var variant = CommandLine.VariantOf(options);
        Verdict.CaseResult result;
        IEnumerable<string> described;
        try
        {
            described = ConcurrentScenarios.render(ConcurrentScenarios.ofScenario(scenario));
            result = Catalogue.judgeScenario(entry, variant, variant, scenario);
        }
        catch (ScenarioFormatException e)
        {
            throw new UsageException($"{path}: {e.Message}");
        }
        if (scenario.Description is { } description) stdout.WriteLine(description);
        stdout.WriteLine($"P{entry.Number} {entry.Name} ({entry.Title}) on the {variant}:");
        foreach (var line in described) stdout.WriteLine("  " + line);
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
