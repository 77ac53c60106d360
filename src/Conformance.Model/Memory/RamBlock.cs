namespace Conformance.Model;

/// <summary>
/// Host backing of a RAM, ROM, ROM-device or RAM-device region (include/exec/ramblock.h): its bytes and
/// its ram_addr offset, which indexes the dirty bitmaps (include/exec/ram_addr.h).
/// </summary>
public sealed class RamBlock
{
    public RamBlock(string name, UInt128 maxLength, ulong ramAddr, uint seed)
    {
        Name = name;
        MaxLength = maxLength;
        RamAddr = ramAddr;
        Bytes = new ByteStore(maxLength, seed);
    }

    public string Name { get; }
    public UInt128 MaxLength { get; }

    /// <summary>Offset in the ram_addr space; page-aligned, blocks never overlap.</summary>
    public ulong RamAddr { get; }

    public ByteStore Bytes { get; }
}
