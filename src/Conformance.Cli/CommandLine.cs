using Conformance.Model.Targets;
using Conformance.Model;
using Conformance.Model.Scenarios;
using Conformance.Properties;

namespace Conformance.Cli;

/// <summary>The `conformance` command: dispatches verbs, turns bad input into one clear line and exit code 2.</summary>
public static class CommandLine
{

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            // --root DIR (any verb): where fixtures/ and snapshots/ are, instead of CONFORMANCE_ROOT or the
            // repository the tool was built from
            int rootAt = Array.IndexOf(args, "--root");
            if (rootAt >= 0)
            {
                if (rootAt + 1 >= args.Length) throw new UsageException("option --root needs a value");
                if (!Directory.Exists(args[rootAt + 1])) throw new UsageException($"--root {args[rootAt + 1]}: no such folder");
                Settings.setRoot(args[rootAt + 1]);
                args = args.Take(rootAt).Concat(args.Skip(rootAt + 2)).ToArray();
            }
            if (args.Length > 0 && args[0] == "help") args = args.Skip(1).Append("--help").ToArray();
            var (parse, error) = CommandTree.Parse(args, (verb, options) => verb switch
            {
                "check" => CheckCommand.Run(options, stdout),
                "list" => ListCommand.Run(options, stdout),
                "replay" => ReplayCommand.Run(options, stdout),
                "layout" => LayoutCommand.Run(options, stdout, stderr),
                "explain" => ExplainCommand.Run(options, stdout),
                "matrix" => MatrixCommand(options, stdout),
                "approve" => ApproveCommand.Run(options, stdout),
                "merge" => CiReport.Merge(options, stdout),
                _ => throw new UsageException($"unknown verb '{verb}'"),
            });
            var invocation = new System.CommandLine.InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
            if (args.Length == 0)
            {
                parse.RootCommandResult.Command.Parse("--help").Invoke(invocation);
                return 2;
            }
            if (error is not null) throw new UsageException(error + " (try: conformance --help)");
            return parse.Invoke(invocation);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"conformance: {e.Message}");
            return 2;
        }
        catch (ScenarioFormatException e)
        {
            stderr.WriteLine($"conformance: {e.Message}");
            return 2;
        }
        catch (LayoutError e)
        {
            stderr.WriteLine($"conformance: {e.Message}");
            return 2;
        }
        catch (Conformance.Model.Targets.TargetCannotRun e)
        {
            stderr.WriteLine($"conformance: the target cannot run this: {e.Message}");
            return 2;
        }
        catch (Conformance.Qemu.QemuException e)
        {
            // a QEMU that cannot be run at all (not a QEMU, refuses the machine, crashes at start): its
            // failures during cases are observations, reported by the differential itself
            stderr.WriteLine($"conformance: QEMU could not be run: {e.Message}");
            return 2;
        }
    }

    private static int MatrixCommand(Options options, TextWriter stdout)
    {
        options.Allow();
        stdout.Write(Conformance.Properties.ConformanceMatrix.render());
        return 0;
    }

    public static Profile ParseProfile(string text) => text.ToLowerInvariant() switch
    {
        "qemu72" => Profile.Qemu72,
        "qemu92" => Profile.Qemu92,
        _ => throw new UsageException($"unknown profile '{text}' (expected Qemu72 or Qemu92)"),
    };

    /// <summary>A broken variant of the model by name: one of the model's faults or one of the virtio layer's.</summary>
    public static ModelTarget ParseVariant(string text) =>
        Variant.Parse(text) is { } v ? new ModelTarget(v) : new ModelTarget(Variant.Of(ParseFault(text)));

    /// <summary>The --variant of a command (the reference model without one).</summary>
    public static ModelTarget VariantOf(Options options) =>
        options.Get("variant") is { } v ? ParseVariant(v) : ModelTarget.Reference;

    public static Fault ParseFault(string text) =>
        Enum.TryParse<Fault>(text, ignoreCase: true, out var f) && Enum.IsDefined(f)
            ? f
            : throw new UsageException($"unknown variant '{text}' (expected one of: {string.Join(", ", Enum.GetNames<Fault>().Concat(Enum.GetNames<Conformance.Model.Virtio.VirtioFault>()).Where(n => n != "None"))})");

    /// <summary>Reads a scenario file (errors name the file and the JSON path) and applies --profile.</summary>
    public static Scenario LoadScenario(string path, Options options)
    {
        Scenario scenario;
        try
        {
            scenario = LayoutFiles.parseScenarioFile(path, ReadFile(path));
        }
        catch (ScenarioFormatException e)
        {
            throw new UsageException($"{path}: {e.Message}");
        }
        return options.Get("profile") is { } p ? scenario with { Profile = ParseProfile(p) } : scenario;
    }

    public static string ReadFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{path}: cannot read ({e.Message})");
        }
    }
}
