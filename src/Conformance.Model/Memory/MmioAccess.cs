namespace Conformance.Model;

/// <summary>One call of a device's read or write callback: region-relative offset, size in bytes, value (little-endian).</summary>
public readonly record struct MmioAccess(bool IsWrite, ulong Offset, uint Size, ulong Value)
{
    public override string ToString() => $"{(IsWrite ? "write" : "read")} +0x{Offset:x} size {Size} = 0x{Value:x}";
}
