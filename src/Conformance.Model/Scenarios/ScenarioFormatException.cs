namespace Conformance.Model.Scenarios;

/// <summary>A scenario file that does not follow the format; the message names the JSON path.</summary>
public sealed class ScenarioFormatException : Exception
{
    public ScenarioFormatException(string path, string message) : base($"{path}: {message}") => Path = path;

    public string Path { get; }
}
