namespace Conformance.Model.Virtio;

/// <summary>A split-ring descriptor: addr u64, len u32, flags u16, next u16, little-endian (VIRTIO 1.2 §2.7.5).</summary>
public readonly record struct VringDesc(ulong Addr, uint Len, ushort Flags, ushort Next)
{
    public bool HasNext => (Flags & VirtioConstants.DescFlagNext) != 0;
    public bool IsWrite => (Flags & VirtioConstants.DescFlagWrite) != 0;
    public bool IsIndirect => (Flags & VirtioConstants.DescFlagIndirect) != 0;

    public static VringDesc Decode(ReadOnlySpan<byte> b) => new(
        System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(b),
        System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
        System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(b[12..]),
        System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(b[14..]));

    public void Encode(Span<byte> b)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b, Addr);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(b[8..], Len);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b[12..], Flags);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b[14..], Next);
    }
}
