namespace Conformance.Cli;

/// <summary>Positional arguments and --name value options of one verb.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string> _named = new();
    private readonly List<string> _positional = new();

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal))
            {
                if (i + 1 >= args.Length) throw new UsageException($"option {args[i]} needs a value");
                o._named[args[i][2..]] = args[++i];
            }
            else o._positional.Add(args[i]);
        }
        return o;
    }

    public string? Get(string name) => _named.GetValueOrDefault(name);

    public IReadOnlyList<string> Positional => _positional;

    /// <summary>Fails on options the verb does not know, so a typo is not silently ignored.</summary>
    public void Allow(params string[] names)
    {
        foreach (var key in _named.Keys)
            if (!names.Contains(key))
                throw new UsageException($"unknown option --{key} (allowed: {string.Join(", ", names.Select(n => "--" + n))})");
    }
}
