using Conformance.Model;
using Conformance.Properties;
using Microsoft.FSharp.Core;

namespace Conformance.Cli;

/// <summary>`conformance check`: the property catalogue against the embedded reference model.</summary>
public static class CheckCommand
{
    /// <summary>`check --target qemu [--qemu PATH] [--profile P] [--max-test N] [--replay TOKEN]`: generated
    /// virtio-blk requests on a real QEMU and on the model, side by side.</summary>
    private static int CheckQemu(Options options, TextWriter stdout)
    {
        foreach (var modelOnly in new[] { "property", "variant", "save" })
            if (options.Get(modelOnly) is not null) throw new UsageException($"--{modelOnly} does not apply to --target qemu");
        var binary = Conformance.Qemu.QemuBinary.Find(options.Get("qemu"))
            ?? throw new UsageException(options.Get("qemu") is { } path
                ? $"no QEMU at '{path}'"
                : "no qemu-system-x86_64 found (apt-get install qemu-system-x86, or --qemu PATH, or QEMU=PATH)");
        var profile = options.Get("profile") is { } p && p != "all" ? CommandLine.ParseProfile(p) : binary.Profile;
        int cases = QemuDifferential.defaultCases();
        if (options.Get("max-test") is { } m && (!int.TryParse(m, out cases) || cases < 1))
            throw new UsageException($"--max-test takes a positive number, not '{m}'");
        var replay = FSharpOption<Runner.ReplayToken>.None;
        if (options.Get("replay") is { } token)
        {
            try { replay = Runner.ReplayToken.Parse(token); }
            catch (Exception) { throw new UsageException($"--replay takes seed,gamma,size as printed by a failure, not '{token}'"); }
        }
        var outcome = QemuDifferential.checkAgainst(binary, profile, cases, replay);
        stdout.Write(outcome.Report);
        return outcome.Passed ? 0 : 1;
    }

    public static int Run(Options options, TextWriter stdout)
    {
        options.Allow("property", "profile", "max-test", "replay", "variant", "save", "target", "qemu");
        switch (options.Get("target"))
        {
            case null or "model": break;
            case "qemu": return CheckQemu(options, stdout);
            case var t: throw new UsageException($"--target is 'model' (the default) or 'qemu', not '{t}'");
        }
        if (options.Get("qemu") is not null) throw new UsageException("--qemu PATH goes with --target qemu");
        var entries = Catalogue.all.ToList();
        var parallel = ParallelCatalogue.all.ToList();
        if (options.Get("property") is { } name)
        {
            var found = Catalogue.find(name);
            var foundParallel = ParallelCatalogue.find(name);
            if (FSharpOption<Catalogue.Entry>.get_IsNone(found) && FSharpOption<ParallelCatalogue.Entry>.get_IsNone(foundParallel))
                throw new UsageException($"unknown property '{name}' (see: conformance list)");
            entries = FSharpOption<Catalogue.Entry>.get_IsNone(found) ? new() : new() { found.Value };
            parallel = FSharpOption<ParallelCatalogue.Entry>.get_IsNone(foundParallel) ? new() : new() { foundParallel.Value };
        }
        var profiles = options.Get("profile") is { } p && p != "all"
            ? new[] { CommandLine.ParseProfile(p) }
            : new[] { Profile.Qemu72, Profile.Qemu92 };
        int maxTest = Runner.defaultMaxTest();
        if (options.Get("max-test") is { } m && (!int.TryParse(m, out maxTest) || maxTest < 1))
            throw new UsageException($"--max-test takes a positive number, not '{m}'");
        var replay = FSharpOption<Runner.ReplayToken>.None;
        if (options.Get("replay") is { } token)
        {
            try
            {
                replay = Runner.ReplayToken.Parse(token);
            }
            catch (Exception e) when (e is FormatException or OverflowException or Exception)
            {
                throw new UsageException($"--replay takes seed,gamma,size as printed by a failure, not '{token}'");
            }
        }
        var fault = options.Get("variant") is { } v ? CommandLine.ParseFault(v) : Fault.None;
        var impl = Implementation.ofFault(fault);

        int failed = 0, ran = 0;
        foreach (var entry in entries)
        {
            foreach (var profile in profiles)
            {
                var checkedOutcome = Runner.check(entry, profile, impl, maxTest, replay);
                var outcome = options.Get("save") is { } dir ? Runner.recordTo(dir, checkedOutcome) : Runner.record(checkedOutcome);
                stdout.Write(Runner.report(outcome, impl));
                stdout.WriteLine();
                ran++;
                if (!outcome.Passed) failed++;
            }
        }
        // The concurrency properties (P20-P24): cases and runs per case from CONFORMANCE_PARALLEL_CASES/_RUNS.
        var variant = ParallelCatalogue.Variant.NewModelFault(fault);
        foreach (var entry in parallel)
        {
            foreach (var profile in profiles)
            {
                if (entry.Name == "parallel-virtqueues" && fault != Fault.None) continue;   // a virtio-layer property
                var outcome = entry.Check.Invoke(variant).Invoke(profile).Invoke(Settings.parallelCases()).Invoke(replay);
                stdout.Write(ParallelCatalogue.report(entry, profile, variant, outcome));
                stdout.WriteLine();
                ran++;
                if (!outcome.Passed) failed++;
            }
        }
        stdout.WriteLine($"{ran - failed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }
}
