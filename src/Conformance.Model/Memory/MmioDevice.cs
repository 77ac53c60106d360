namespace Conformance.Model;

/// <summary>
/// The device behind an I/O region (or the ops of a ROM/RAM device): registers backed by bytes, the
/// access-size rules of its MemoryRegionOps. Every callback is logged once, in order, in
/// <see cref="MemorySystem.AccessJournal"/>. The model's devices
/// behave like pc-testdev's iomem (hw/misc/pc-testdev.c:test_iomem_read/write): plain storage,
/// little-endian, so what DMA wrote can be read back.
/// </summary>
public sealed class MmioDevice
{
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

    /// <summary>One read callback of <paramref name="size"/> bytes (1..8); returns the access.</summary>
    internal MmioAccess Read(ulong offset, uint size) => new(false, offset, size, Storage.ReadLittleEndian(offset, size));

    /// <summary>One write callback; returns the access.</summary>
    internal MmioAccess Write(ulong offset, uint size, ulong value)
    {
        if (WritesStore) Storage.WriteLittleEndian(offset, size, value);
        return new MmioAccess(true, offset, size, value);
    }
}
