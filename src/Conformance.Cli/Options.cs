namespace Conformance.Cli;

/// <summary>Positional arguments and --name value options of one verb.</summary>
public sealed class Options
{
    private readonly Dictionary<string, List<string>> _named = new();
    private readonly List<string> _positional = new();

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal))
            {
                if (i + 1 >= args.Length) throw new UsageException($"option {args[i]} needs a value");
                string key = args[i][2..];
                if (!o._named.TryGetValue(key, out var values)) o._named[key] = values = new List<string>();
                values.Add(args[++i]);
            }
            else o._positional.Add(args[i]);
        }
        return o;
    }

    /// <summary>The option's value; an option given twice is an error unless the verb takes several (<see cref="GetAll"/>).</summary>
    public string? Get(string name) => _named.TryGetValue(name, out var values)
        ? values.Count == 1 ? values[0] : throw new UsageException($"option --{name} is given {values.Count} times")
        : null;

    /// <summary>Every value of an option that may be repeated (`--qemu A --qemu B`).</summary>
    public IReadOnlyList<string> GetAll(string name) => _named.TryGetValue(name, out var values) ? values : Array.Empty<string>();

    public IReadOnlyList<string> Positional => _positional;

    /// <summary>Fails on options the verb does not know, so a typo is not silently ignored.</summary>
    public void Allow(params string[] names)
    {
        foreach (var key in _named.Keys)
            if (!names.Contains(key))
                throw new UsageException($"unknown option --{key} (allowed: {string.Join(", ", names.Select(n => "--" + n))})");
    }
}
