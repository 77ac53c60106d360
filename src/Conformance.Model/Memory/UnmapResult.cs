namespace Conformance.Model;

/// <summary>What an unmap did, for traces and properties.</summary>
public readonly record struct UnmapResult(
    bool Performed,
    ulong BytesWrittenBack,
    int NeverProducedBytesWrittenBack,
    int ZeroFillBytesWrittenBack,
    IReadOnlyList<string> ClientsScheduled)
{
    public static readonly UnmapResult NotLive = new(false, 0, 0, 0, Array.Empty<string>());
}
