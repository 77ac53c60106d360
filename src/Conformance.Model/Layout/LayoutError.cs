namespace Conformance.Model;

/// <summary>A layout that QEMU could not build, with the path of the offending element.</summary>
public sealed class LayoutError : Exception
{
    public LayoutError(string path, string message) : base($"{path}: {message}") => Path = path;

    public string Path { get; }
}
