namespace Conformance.Cli;

/// <summary>A command line or input the tool cannot act on: reported as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
