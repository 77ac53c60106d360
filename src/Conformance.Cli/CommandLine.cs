using Conformance.Model;
using Conformance.Model.Scenarios;
using Conformance.Properties;

namespace Conformance.Cli;

/// <summary>The `conformance` command: dispatches verbs, turns bad input into one clear line and exit code 2.</summary>
public static class CommandLine
{
    public const string Usage = """
        conformance — QEMU DMA map/unmap conformance suite

        usage:
          conformance check [--property NAME] [--profile Qemu72|Qemu92|all] [--max-test N]
                            [--replay SEED,GAMMA,SIZE] [--variant FAULT] [--save DIR]
              Runs the property catalogue against the embedded reference model (or a broken
              variant of it) and prints, per property, the verdict, the number of cases, the case
              distribution, and for a failure the shrunk scenario, its trace and the replay command.
              A failure of the reference model is saved to fixtures/regressions; --save DIR saves
              every failure's counterexample (also a broken variant's) to DIR instead. Includes the
              concurrency properties P20-P24 (CONFORMANCE_PARALLEL_CASES / _RUNS set their sizes).
          conformance check --target qemu [--qemu PATH]... [--transport legacy|modern] [--profile P]
                            [--variant FAULT] [--max-test N] [--replay TOKEN] [--matrix FILE]
              Runs generated virtio-blk requests on a real QEMU (legacy and modern transport, one
              reused process per transport and bounce budget) and on the model over the layout that
              QEMU prints, with the queue size its device reports, and reports every disagreement
              with both observations. PATH defaults to $QEMU, then qemu-system-x86_64 on PATH; its
              version picks the profile unless --profile says otherwise. Default 300 cases. Several
              --qemu (e.g. the paths scripts/fetch-qemu prints), or --matrix, run each QEMU on each
              transport and print the version matrix; --matrix FILE also writes it to FILE.
          conformance list
              Lists the properties with the rules they check, and the model's broken variants.
          conformance matrix
              Prints the conformance matrix (rule -> properties -> status) as a Markdown table.
          conformance replay FILE [--profile Qemu72|Qemu92] [--variant FAULT] [--property NAME]
              Runs one scenario file and prints its canonical trace; with a property (or a
              regression file, which names one) also its verdict.
          conformance replay FILE --target qemu [--qemu PATH] [--transport legacy|modern]
              Runs a virtio-blk scenario (the shape a differential failure prints) on a real QEMU and
              on the model, and prints both observations side by side, the differences and the trace.
          conformance replay --property NAME --profile Qemu72|Qemu92 --seed SEED,GAMMA,SIZE [--variant FAULT]
              Regenerates the case a failure report printed and judges it.
          conformance explain FILE [--profile Qemu72|Qemu92] [--variant FAULT]
              Runs one scenario and explains each step in the words of the QEMU rules: which
              section an address hits and why, direct or bounce, references, bytes read and
              written back, pages dirtied, map clients woken, and what was left unreleased.
          conformance approve [--list | --reject]
              Shows the diff of every pending snapshot (left by a failing snapshot test) and
              moves it over the approved one; --list only shows, --reject discards them.
          conformance layout TREE [--flat FLAT]
              Reads an `info mtree` dump (tree form; plain, -D or -o; QEMU 7.2 to 11.x) and prints
              the model's flat views in the format of `info mtree -f`. With FLAT, QEMU's own
              `info mtree -f` of the same machine, it instead compares the two per address space
              (equal, or the differing lines) and exits 1 when anything differs. No dump shows
              which `i/o` regions with subregions are pure containers: FLAT settles it; without
              FLAT one warning line on stderr names what was assumed (docs/layouts.md).

        FAULT names a broken variant of the model or of its virtio layer (conformance list shows them).
        every verb takes --root DIR: where fixtures/ and snapshots/ are (default: $CONFORMANCE_ROOT, else
        the repository the tool was built from, else the current folder).

        exit codes: 0 all passed, 1 a property failed, 2 bad usage or bad input.
        """;

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
            if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
            {
                stdout.WriteLine(Usage);
                return args.Length == 0 ? 2 : 0;
            }
            if (args[0] == "approve") return ApproveCommand.Run(args.Skip(1).ToArray(), stdout);
            var options = Options.Parse(args.Skip(1).ToArray());
            return args[0] switch
            {
                "check" => CheckCommand.Run(options, stdout),
                "list" => ListCommand.Run(options, stdout),
                "replay" => ReplayCommand.Run(options, stdout),
                "layout" => LayoutCommand.Run(options, stdout, stderr),
                "explain" => ExplainCommand.Run(options, stdout),
                "matrix" => MatrixCommand(options, stdout),
                _ => throw new UsageException($"unknown verb '{args[0]}' (try: conformance help)"),
            };
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

    /// <summary>A broken variant by name: one of the model's faults or one of the virtio layer's.</summary>
    public static Implementation.Implementation ParseVariant(string text) =>
        Enum.TryParse<Conformance.Model.Virtio.VirtioFault>(text, ignoreCase: true, out var v) && v != Conformance.Model.Virtio.VirtioFault.None && Enum.IsDefined(v)
            ? Implementation.ofVirtioFault(v)
            : Implementation.ofFault(ParseFault(text));

    /// <summary>The --variant of a command (the reference model without one).</summary>
    public static Implementation.Implementation VariantOf(Options options) =>
        options.Get("variant") is { } v ? ParseVariant(v) : Implementation.reference;

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
            scenario = ScenarioJson.Parse(ReadFile(path));
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
