namespace Conformance.Cli;

/// <summary>Positional arguments and --name value options of one verb, as <see cref="CommandTree"/> parsed them.</summary>
public sealed class Options
{
    private readonly Dictionary<string, List<string>> _named = new();
    private readonly List<string> _positional = new();

    /// <summary>Adds a value of a named option (as the command-line parser found it).</summary>
    public void Add(string name, string value)
    {
        if (!_named.TryGetValue(name, out var values)) _named[name] = values = new List<string>();
        values.Add(value);
    }

    public void AddPositional(string value) => _positional.Add(value);

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
