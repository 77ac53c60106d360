using Conformance.Model.Targets;
using Conformance.Model;
using Conformance.Model.Scenarios;
using Conformance.Properties;
using Conformance.Qemu.Differential;
using Microsoft.FSharp.Core;

namespace Conformance.Cli;

/// <summary>
/// `conformance replay FILE` runs one scenario on the model and prints its trace (and, for a regression
/// file, the verdict of the property it names); `conformance replay --property P --seed S,G,SIZE`
/// regenerates the case a failure printed and judges it.
/// </summary>
public static class ReplayCommand
{
    public static int Run(Options options, TextWriter stdout)
    {
        options.Allow("profile", "variant", "property", "seed", "target", "qemu", "transport", "bounce-budget");
        switch (options.Get("target"))
        {
            case null or "model": break;
            case "qemu" when options.Get("seed") is { } qemuSeed:
                {
                    // a catalogue property's failure on QEMU itself (check --target qemu --property P), regenerated
                    var binary = CheckCommand.FindQemu(options.Get("qemu"));
                    var transport = CheckCommand.OneTransport(options);
                    ulong? budget = CheckCommand.BounceBudget(options);
                    using var qemu = CheckCommand.QemuTargetFor(binary, transport, budget);
                    var reference = QemuDifferential.modelTargetOf(CommandLine.VariantOf(options).Variant, FSharpOption<byte[]>.Some(QemuDifferential.romImageOf.Invoke(binary)));
                    return RunSeed(options, qemuSeed, qemu, reference, stdout);
                }
            case "qemu": return RunOnQemu(options, stdout);
            case var t: throw new UsageException($"--target is 'model' (the default) or 'qemu', not '{t}'");
        }
        var impl = CommandLine.VariantOf(options);
        if (options.Get("bounce-budget") is not null) throw new UsageException("--bounce-budget goes with --target qemu");
        if (options.Get("seed") is { } seed) return RunSeed(options, seed, impl, ModelTarget.Reference, stdout);

        if (options.Positional.Count != 1) throw new UsageException("replay takes one scenario file, or --property P --seed S,G,SIZE");
        string path = options.Positional[0];
        var scenario = CommandLine.LoadScenario(path, options);
        if (scenario.IsConcurrent) return ConcurrentCases.Run(path, scenario, options, stdout, explain: false);
        stdout.Write(ScenarioTrace.Render(impl.Run(scenario)));
        var propertyName = options.Get("property") ?? scenario.Property;
        if (propertyName is null) return 0;
        if (options.Get("property") is null && FSharpOption<Catalogue.Entry>.get_IsNone(Catalogue.find(propertyName)))
            throw new UsageException($"{path}: $.property: unknown property '{propertyName}' (see: conformance list)");
        var entry = Find(propertyName);
        if (entry.IsConcurrent) throw new UsageException($"{path}: P{entry.Number} {entry.Name} judges scenarios with threads (\"threads\": [[operations], ...]), and this one has none");
        var result = Catalogue.judgeScenario(entry, impl, ModelTarget.Reference, scenario);
        var violations = Verdict.violations(result).ToList();
        foreach (var f in Verdict.findings(result)) stdout.WriteLine($"registered finding {f}");
        stdout.WriteLine(violations.Count == 0
            ? $"P{entry.Number} {entry.Name} holds"
            : $"P{entry.Number} {entry.Name} FAILS:\n  " + string.Join("\n  ", violations));
        return violations.Count == 0 ? 0 : 1;
    }

    /// <summary>`replay FILE --target qemu [--qemu PATH] [--transport legacy|modern]`: the scenario on QEMU and
    /// on the model, the observations side by side.</summary>
    private static int RunOnQemu(Options options, TextWriter stdout)
    {
        if (options.Positional.Count != 1) throw new UsageException("replay --target qemu takes one scenario file");
        foreach (var modelOnly in new[] { "variant", "property", "bounce-budget" })
            if (options.Get(modelOnly) is not null) throw new UsageException($"--{modelOnly} does not apply to --target qemu");
        string path = options.Positional[0];
        var scenario = CommandLine.LoadScenario(path, options);
        if (scenario.IsConcurrent) throw new UsageException($"{path}: a scenario with threads runs on in-process instances of a target, not on QEMU");
        var transport = CheckCommand.OneTransport(options);
        var binary = CheckCommand.FindQemu(options.Get("qemu"));
        var result = QemuDifferential.replayOnQemu(binary, transport, scenario);
        if (result.IsError) throw new UsageException($"{path} cannot be run on QEMU: {result.ErrorValue}");
        stdout.Write(result.ResultValue.Item2);
        return result.ResultValue.Item1 ? 0 : 1;
    }

    private static Catalogue.Entry Find(string name)
    {
        var found = Catalogue.find(name);
        if (FSharpOption<Catalogue.Entry>.get_IsNone(found)) throw new UsageException($"unknown property '{name}' (see: conformance list)");
        return found.Value;
    }

    private static int RunSeed(Options options, string seed, ITarget impl, ITarget reference, TextWriter stdout)
    {
        var entry = Find(options.Get("property") ?? throw new UsageException("--seed needs --property"));
        var profile = CommandLine.ParseProfile(options.Get("profile") ?? throw new UsageException("--seed needs --profile (the failure report names it)"));
        Runner.ReplayToken token;
        try
        {
            token = Runner.ReplayToken.Parse(seed);
        }
        catch (Exception)
        {
            throw new UsageException($"--seed takes seed,gamma,size as printed by a failure, not '{seed}'");
        }
        var outcome = Runner.checkWith(FSharpOption<ITarget>.Some(reference), entry, profile, impl, 1, token);
        if (outcome.Passed && outcome.FirstCase is { } first && FSharpOption<Scenario>.get_IsSome(first))
        {
            stdout.WriteLine("the regenerated case (it passes):");
            stdout.Write(ScenarioJson.Write(first.Value));
            stdout.Write(ScenarioTrace.Render(impl.Run(first.Value)));
        }
        stdout.Write(Runner.report(outcome, impl));
        return outcome.Passed ? 0 : 1;
    }
}
