using System.CommandLine;
using System.Reflection;

namespace Conformance.Cli;

/// <summary>
/// The verbs and their options as System.CommandLine commands: help per verb (`conformance layout --help`),
/// `--version`, unknown options and verbs refused with a suggestion. Each verb still receives its values as
/// <see cref="Options"/> (the verbs validate their own values and combinations).
/// </summary>
public static class CommandTree
{
    private sealed record OptionSpec(string Name, string Description, bool Repeatable = false, bool Flag = false);

    private sealed record VerbSpec(string Name, string Description, string? Positional, IReadOnlyList<OptionSpec> Options);

    private static readonly OptionSpec Profile = new("profile", "Qemu72 (QEMU up to 9.0), Qemu92 (from 9.2) or all");
    private static readonly OptionSpec Variant = new("variant", "a broken variant of the model or of its virtio layer (see: conformance list)");
    private static readonly OptionSpec MaxTest = new("max-test", "cases per property");
    private static readonly OptionSpec Target = new("target", "model (the default) or qemu");
    private static readonly OptionSpec Qemu = new("qemu", "a qemu-system-x86_64 to run (default: $QEMU, then PATH); repeat it for a version matrix", Repeatable: true);
    private static readonly OptionSpec Transport = new("transport", "legacy or modern (default: both)");
    private static readonly OptionSpec BounceBudget = new("bounce-budget", "with --target qemu and --property: the device's own bounce budget in bytes (x-max-bounce-buffer-size, modern transport)");

    private static readonly VerbSpec[] Verbs =
    {
        new("check", "Runs the property catalogue against the reference model (or a broken variant), or with --target qemu generated virtio-blk requests on real QEMU and on the model.", null, new[]
        {
            new OptionSpec("property", "only this property"), Profile, MaxTest, new("replay", "a replay token (seed,gamma,size) as a failure printed"),
            Variant, new("save", "save every failure's counterexample to this folder"), Target, Qemu, Transport, BounceBudget,
            new("matrix", "with --target qemu: also write the version matrix to this file"),
            new("junit", "also write the results as JUnit XML to this file (for CI systems)"),
            new("json", "also write the results as JSON to this file"),
            new("shard", "K/N: run shard K of N (disjoint, repeatable seeds); merge the shards' JSON reports with `conformance merge`"),
        }),
        new("merge", "Merges the JSON reports of several shards (check --shard K/N --json FILE) into one result; exit 1 if any shard failed.", "FILE", new[]
        {
            new OptionSpec("junit", "also write the merged results as JUnit XML to this file"), new("json", "also write the merged results as JSON to this file"),
        }),
        new("list", "Lists the properties with the rules they check, and the model's broken variants.", null, Array.Empty<OptionSpec>()),
        new("matrix", "Prints the conformance matrix (rule -> properties -> status) as Markdown.", null, Array.Empty<OptionSpec>()),
        new("replay", "Runs a scenario file (its trace; with a property its verdict), regenerates a printed failure (--property --profile --seed), or with --target qemu runs a scenario on QEMU and on the model.", "FILE", new[]
        {
            Profile, Variant, new OptionSpec("property", "judge the scenario with this property"), new("seed", "a replay token to regenerate (with --property and --profile)"),
            Target, Qemu, Transport, BounceBudget,
        }),
        new("explain", "Runs a scenario and explains each step in the words of the QEMU rules.", "FILE", new[] { Profile, Variant }),
        new("approve", "Shows the diff of every pending snapshot and moves it over the approved one.", null, new[]
        {
            new OptionSpec("list", "only show the diffs", Flag: true), new("reject", "discard the pending snapshots", Flag: true),
        }),
        new("layout", "Renders an `info mtree` dump as the model sees it; with --flat, compares it with QEMU's own flat view per address space (exit 1 on a difference).", "TREE", new[]
        {
            new OptionSpec("flat", "QEMU's `info mtree -f` of the same machine"),
        }),
    };

    public static string Version =>
        typeof(CommandTree).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    /// <summary>Parses; on a parse error returns the one line to print (with a suggestion where one fits).</summary>
    public static (ParseResult Parse, string? Error) Parse(string[] args, Func<string, Options, int> run)
    {
        var root = new RootCommand("conformance — QEMU DMA map/unmap conformance suite. Exit codes: 0 all passed, 1 a property failed or a comparison differed, 2 bad usage or bad input.");
        root.Options.Add(new Option<string>("--root") { Description = "where fixtures/ and snapshots/ are (default: $CONFORMANCE_ROOT, else the repository the tool was built from, else the current folder)", Recursive = true });
        foreach (var verb in Verbs)
        {
            var command = new Command(verb.Name, verb.Description);
            var positional = new Argument<string[]>(verb.Positional ?? "ARGS") { Arity = verb.Positional is null ? ArgumentArity.Zero : ArgumentArity.ZeroOrMore };
            if (verb.Positional is not null) command.Arguments.Add(positional);
            var options = new List<(OptionSpec Spec, Option Option)>();
            foreach (var spec in verb.Options)
            {
                Option option = spec.Flag
                    ? new Option<bool>("--" + spec.Name) { Description = spec.Description }
                    : spec.Repeatable
                        ? new Option<string[]>("--" + spec.Name) { Description = spec.Description, AllowMultipleArgumentsPerToken = false }
                        : new Option<string>("--" + spec.Name) { Description = spec.Description };
                command.Options.Add(option);
                options.Add((spec, option));
            }
            command.SetAction(parse =>
            {
                var o = new Options();
                if (verb.Positional is not null)
                    foreach (var value in parse.GetValue(positional) ?? Array.Empty<string>()) o.AddPositional(value);
                foreach (var (spec, option) in options)
                {
                    switch (option)
                    {
                        case Option<bool> flag when parse.GetValue(flag):
                            o.Add(spec.Name, "true");
                            break;
                        case Option<string[]> many:
                            foreach (var value in parse.GetValue(many) ?? Array.Empty<string>()) o.Add(spec.Name, value);
                            break;
                        case Option<string> one when parse.GetValue(one) is { } value:
                            o.Add(spec.Name, value);
                            break;
                    }
                }
                return run(verb.Name, o);
            });
            root.Subcommands.Add(command);
        }
        var result = root.Parse(args);
        if (result.Errors.Count == 0) return (result, null);
        string? unknown = result.UnmatchedTokens.FirstOrDefault();
        // the error about the token the user got wrong, rather than what it left missing
        string message = (unknown is null ? null : result.Errors.FirstOrDefault(e => e.Message.Contains($"'{unknown}'"))?.Message) ?? result.Errors[0].Message;
        if (unknown is not null && Suggest(unknown, result) is { } suggestion) message += $" (did you mean {suggestion}?)";
        return (result, message);
    }

    /// <summary>The verb or option name nearest to an unknown token, if one is near enough.</summary>
    private static string? Suggest(string token, ParseResult result)
    {
        var verb = Verbs.FirstOrDefault(v => v.Name == result.CommandResult.Command.Name);
        var candidates = token.StartsWith("--", StringComparison.Ordinal)
            ? (verb?.Options.Select(o => "--" + o.Name) ?? Enumerable.Empty<string>()).Append("--root").Append("--help")
            : Verbs.Select(v => v.Name);
        var best = candidates.Select(c => (Name: c, Distance: Distance(token, c))).OrderBy(c => c.Distance).FirstOrDefault();
        return best.Name is not null && best.Distance <= Math.Max(2, token.Length / 3) ? best.Name : null;
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
