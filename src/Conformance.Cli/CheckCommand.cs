using Conformance.Model;
using Conformance.Model.Targets;
using Conformance.Properties;
using Conformance.Qemu.Differential;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace Conformance.Cli;

/// <summary>`conformance check`: the property catalogue against the embedded reference model.</summary>
public static class CheckCommand
{
    /// <summary>
    /// `check --target qemu [--qemu PATH]... [--transport legacy|modern] [--profile P] [--variant FAULT]
    /// [--max-test N] [--replay TOKEN] [--matrix FILE]`: generated virtio-blk requests on real QEMUs and on the
    /// model, side by side. Several --qemu (or --matrix) run every QEMU on each transport in turn and print the
    /// version matrix (written to FILE with --matrix).
    /// </summary>
    private static int CheckQemu(Options options, TextWriter stdout)
    {
        if (options.Get("property") is not null) return CheckCatalogueOnQemu(options, stdout);
        if (options.Get("save") is not null) throw new UsageException("--save does not apply to the differential (--target qemu without --property)");
        if (options.Get("bounce-budget") is not null) throw new UsageException("--bounce-budget goes with --property (the differential covers every budget)");
        var binaries = QemuBinaries(options);
        var transports = Transports(options);
        var variant = CommandLine.VariantOf(options);
        if (variant.Variant.VirtioFault != Conformance.Model.Virtio.VirtioFault.None)
            throw new UsageException("--target qemu compares the model's DMA layer: give a variant of it (a virtio-layer variant does not apply)");
        var fault = variant.Variant.Fault;
        int cases = MaxTest(options) ?? QemuDifferential.defaultCases();
        var replay = Replay(options);
        string? matrixFile = options.Get("matrix");
        bool matrix = binaries.Count > 1 || matrixFile is not null;
        var columns = new List<QemuDifferential.VersionColumn>();
        var results = new List<CiResult>();
        bool passed = true;
        foreach (var binary in binaries)
        {
            Profile profile;
            try
            {
                profile = options.Get("profile") is { } p && p != "all" ? CommandLine.ParseProfile(p) : binary.Profile;
            }
            catch (Conformance.Qemu.QemuException e)
            {
                throw new UsageException(e.Message);
            }
            // one run over both transports, or (for the matrix) one run per transport
            var runs = matrix ? transports.Select(t => ListModule.OfSeq(new[] { t })).ToList() : new() { transports };
            var outcomes = new List<Tuple<Conformance.Qemu.VirtioTransport, QemuDifferential.DifferentialOutcome>>();
            foreach (var run in runs)
            {
                var outcome = QemuDifferential.checkAgainstOn(run, fault, binary, profile, cases, replay);
                stdout.Write(outcome.Report);
                stdout.WriteLine();
                results.Add(new CiResult($"QEMU {binary.Version}", "differential virtio-blk", string.Join("+", run.Select(t => t.ToString().ToLowerInvariant())),
                    outcome.Passed, outcome.Tests, outcome.Report, CiReport.ReproduceLines(outcome.Report)));
                passed &= outcome.Passed;
                outcomes.Add(Tuple.Create(run.Head, outcome));
            }
            columns.Add(new QemuDifferential.VersionColumn(binary, profile, ListModule.OfSeq(outcomes)));
        }
        if (matrix)
        {
            string table = QemuDifferential.versionMatrix(ListModule.OfSeq(columns));
            stdout.Write(table);
            if (matrixFile is not null) File.WriteAllText(matrixFile, table);
        }
        CiReport.Write(options, results);
        return passed ? 0 : 1;
    }

    /// <summary>--max-test N, if given.</summary>
    private static int? MaxTest(Options options)
    {
        if (options.Get("max-test") is not { } m) return null;
        return int.TryParse(m, out var n) && n >= 1 ? n : throw new UsageException($"--max-test takes a positive number, not '{m}'");
    }

    /// <summary>--replay TOKEN, if given.</summary>
    private static FSharpOption<Runner.ReplayToken> Replay(Options options)
    {
        if (options.Get("replay") is not { } token) return FSharpOption<Runner.ReplayToken>.None;
        try { return Runner.ReplayToken.Parse(token); }
        catch (Exception) { throw new UsageException($"--replay takes seed,gamma,size as printed by a failure, not '{token}'"); }
    }

    /// <summary>One catalogue entry on one target and profile: checked, saved where it belongs (--save DIR, or
    /// the regression corpus for the reference model), reported; true when it passed (or was skipped).</summary>
    private static bool CheckEntry(Options options, TextWriter stdout, Catalogue.Entry entry, Profile profile, Conformance.Model.Targets.ITarget target,
        Conformance.Model.Targets.ITarget reference, int? maxTest, FSharpOption<Runner.ReplayToken> replay, List<CiResult> results)
    {
        var checkedOutcome = Runner.checkWith(FSharpOption<ITarget>.Some(reference), entry, profile, target, maxTest ?? Runner.defaultCases(entry), replay);
        var outcome = options.Get("save") is { } dir ? Runner.recordTo(dir, checkedOutcome) : Runner.record(checkedOutcome);
        string report = Runner.report(outcome, target);
        stdout.Write(report);
        stdout.WriteLine();
        results.Add(new CiResult(target.Name, $"P{entry.Number} {entry.Name}", profile.ToString(), outcome.Passed, outcome.Tests, report, CiReport.ReproduceLines(report)));
        return outcome.Passed;
    }

    private static List<Conformance.Qemu.QemuBinary> QemuBinaries(Options options)
    {
        var paths = options.GetAll("qemu");
        return (paths.Count == 0 ? new string?[] { null } : paths.ToArray()).Select(FindQemu).ToList();
    }

    /// <summary>The QEMU at <paramref name="path"/> (null: $QEMU, then PATH).</summary>
    internal static Conformance.Qemu.QemuBinary FindQemu(string? path) =>
        Conformance.Qemu.QemuBinary.Find(path)
        ?? throw new UsageException(path is not null
            ? $"no QEMU at '{path}'"
            : "no qemu-system-x86_64 found (apt-get install qemu-system-x86, or --qemu PATH, or QEMU=PATH)");

    /// <summary>--transport for a command that runs one (default legacy).</summary>
    internal static Conformance.Qemu.VirtioTransport OneTransport(Options options) =>
        options.Get("transport") is null ? Conformance.Qemu.VirtioTransport.Legacy : Transports(options).Head;

    private static FSharpList<Conformance.Qemu.VirtioTransport> Transports(Options options) => options.Get("transport") switch
    {
        null => QemuDifferential.AllTransports,
        "legacy" => ListModule.OfSeq(new[] { Conformance.Qemu.VirtioTransport.Legacy }),
        "modern" => ListModule.OfSeq(new[] { Conformance.Qemu.VirtioTransport.Modern }),
        var t => throw new UsageException($"--transport is legacy or modern, not '{t}'"),
    };

    /// <summary>
    /// `check --target qemu --property NAME|all [--qemu PATH]... [--transport legacy|modern] [--bounce-budget B]
    /// [--variant V] [--max-test N] [--replay TOKEN] [--save DIR]`: catalogue properties judged on QEMU itself
    /// (QemuTarget), each QEMU and transport in turn, with cases generated on that QEMU's machine; a property that
    /// needs what QEMU cannot do or show is reported SKIP with what is missing. P26 targets-agree compares QEMU
    /// with the reference model (with --variant: that broken variant of it, to see the comparison catch it).
    /// </summary>
    private static int CheckCatalogueOnQemu(Options options, TextWriter stdout)
    {
        if (options.Get("matrix") is not null) throw new UsageException("--matrix goes with the differential (--target qemu without --property)");
        string name = options.Get("property")!;
        var entries = name == "all" ? Catalogue.all.ToList()
            : FSharpOption<Catalogue.Entry>.get_IsSome(Catalogue.find(name)) ? new List<Catalogue.Entry> { Catalogue.find(name).Value }
            : throw new UsageException($"unknown property '{name}' (see: conformance list)");
        if (options.Get("variant") is not null && !entries.Any(e => e.NeedsReference))
            throw new UsageException("--variant names a broken variant of the model; QEMU has none (with --target qemu it makes the model side of targets-agree that variant)");
        int? maxTest = MaxTest(options);
        var replay = Replay(options);
        int failed = 0, ran = 0;
        var results = new List<CiResult>();
        ulong? budget = BounceBudget(options);
        var variant = CommandLine.VariantOf(options).Variant;
        foreach (var binary in QemuBinaries(options))
            foreach (var transport in Transports(options))
            {
                using var target = QemuTargetFor(binary, transport, budget);
                var reference = QemuDifferential.modelTargetOf(variant, FSharpOption<byte[]>.Some(QemuDifferential.romImageOf.Invoke(binary)));
                Profile profile = options.Get("profile") is { } p && p != "all" ? CommandLine.ParseProfile(p) : binary.Profile;
                foreach (var entry in entries)
                {
                    ran++;
                    if (!CheckEntry(options, stdout, entry, profile, target, reference, maxTest, replay, results)) failed++;
                }
            }
        stdout.WriteLine($"{ran - failed} passed (skipped ones included), {failed} failed");
        CiReport.Write(options, results);
        return failed == 0 ? 0 : 1;
    }

    /// <summary>--bounce-budget B, if given.</summary>
    internal static ulong? BounceBudget(Options options)
    {
        if (options.Get("bounce-budget") is not { } b) return null;
        return ulong.TryParse(b, out var n) && n >= 1 ? n : throw new UsageException($"--bounce-budget takes a positive number of bytes, not '{b}'");
    }

    /// <summary>A QEMU configuration as a target, with the known deviations registered for its release.</summary>
    internal static Conformance.Targets.Qemu.QemuTarget QemuTargetFor(Conformance.Qemu.QemuBinary binary, Conformance.Qemu.VirtioTransport transport, ulong? budget)
    {
        if (budget is not null && transport == Conformance.Qemu.VirtioTransport.Legacy)
            throw new UsageException("--bounce-budget needs the modern transport (iommu_platform=on): add --transport modern");
        return QemuDifferential.qemuTargetFor(binary, transport, budget is { } b ? FSharpOption<ulong>.Some(b) : FSharpOption<ulong>.None);
    }

    public static int Run(Options options, TextWriter stdout)
    {
        try
        {
            return RunSharded(options, stdout);
        }
        finally
        {
            Settings.clearShard();   // the shard is this command's, not the process's
        }
    }

    private static int RunSharded(Options options, TextWriter stdout)
    {
        options.Allow("property", "profile", "max-test", "replay", "variant", "save", "target", "qemu", "transport", "bounce-budget", "matrix", "junit", "json", "shard");
        if (options.Get("shard") is { } shard)
        {
            if (options.Get("replay") is not null) throw new UsageException("--shard and --replay do not go together (a replay token names one case)");
            try
            {
                var (k, n) = Settings.parseShard(shard);
                Settings.setShard(k, n);
            }
            catch (Exception e) when (e is not UsageException)
            {
                throw new UsageException(e.Message);
            }
        }
        switch (options.Get("target"))
        {
            case null or "model": break;
            case "qemu": return CheckQemu(options, stdout);
            case var t: throw new UsageException($"--target is 'model' (the default) or 'qemu', not '{t}'");
        }
        foreach (var qemuOnly in new[] { "qemu", "transport", "bounce-budget", "matrix" })
            if (options.GetAll(qemuOnly).Count > 0) throw new UsageException($"--{qemuOnly} goes with --target qemu");
        var entries = Catalogue.all.ToList();
        if (options.Get("property") is { } name)
        {
            var found = Catalogue.find(name);
            if (FSharpOption<Catalogue.Entry>.get_IsNone(found))
                throw new UsageException($"unknown property '{name}' (see: conformance list)");
            entries = new() { found.Value };
        }
        var profiles = options.Get("profile") is { } p && p != "all"
            ? new[] { CommandLine.ParseProfile(p) }
            : new[] { Profile.Qemu72, Profile.Qemu92 };
        int? maxTest = MaxTest(options);
        var replay = Replay(options);
        var target = CommandLine.VariantOf(options);

        int failed = 0, ran = 0;
        var results = new List<CiResult>();
        foreach (var entry in entries)
        {
            foreach (var profile in profiles)
            {
                ran++;
                if (!CheckEntry(options, stdout, entry, profile, target, ModelTarget.Reference, maxTest, replay, results)) failed++;
            }
        }
        stdout.WriteLine($"{ran - failed} passed, {failed} failed");
        CiReport.Write(options, results);
        return failed == 0 ? 0 : 1;
    }
}
