namespace Conformance.Qemu;

/// <summary>QEMU could not be started, hung, crashed, or answered something unexpected. Carries the tail of its stderr.</summary>
public sealed class QemuException(string message, string stderrTail = "") : Exception(
    stderrTail.Length == 0 ? message : $"{message}\n--- QEMU stderr (tail) ---\n{stderrTail}")
{
    public string StderrTail { get; } = stderrTail;
}
