namespace Conformance.Model;

/// <summary>
/// The device behind an I/O region (or the ops of a ROM/RAM device): registers backed by bytes, the
/// access-size rules of its MemoryRegionOps, and a log of every callback invocation. The model's devices
/// behave like pc-testdev's iomem (hw/misc/pc-testdev.c:test_iomem_read/write): plain storage,
/// little-endian, so what DMA wrote can be read back.
/// </summary>
public sealed class MmioDevice
{
    private readonly List<MmioAccess> _log = new();

    public MmioDevice(ByteStore storage, AccessRules rules, bool writesStore = true)
    {
        Storage = storage;
        Rules = rules;
        WritesStore = writesStore;
    }

    public ByteStore Storage { get; }
    public AccessRules Rules { get; }

    /// <summary>False for ROM devices, whose writes are commands (e.g. pflash) and never change the ROM image.</summary>
    public bool WritesStore { get; }

    public IReadOnlyList<MmioAccess> Log => _log;

    /// <summary>One callback of <paramref name="size"/> bytes (1..8).</summary>
    internal ulong Read(ulong offset, uint size)
    {
        Span<byte> bytes = stackalloc byte[8];
        bytes.Clear();
        Storage.Read(offset, bytes[..(int)size]);
        ulong value = BitConverter.ToUInt64(bytes);
        _log.Add(new MmioAccess(false, offset, size, value));
        return value;
    }

    internal void Write(ulong offset, uint size, ulong value)
    {
        _log.Add(new MmioAccess(true, offset, size, value));
        if (!WritesStore) return;
        Span<byte> bytes = stackalloc byte[8];
        BitConverter.TryWriteBytes(bytes, value);
        Storage.Write(offset, bytes[..(int)size]);
    }
}
