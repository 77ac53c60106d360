using System.Buffers.Binary;

namespace Conformance.Model.Virtio;

/// <summary>Guest memory as a driver reaches it: the model's address space (address_space_read/write, as a
/// CPU would), or a real QEMU over qtest.</summary>
public interface IGuestMemory
{
    void Write(ulong addr, ReadOnlySpan<byte> data);

    void Read(ulong addr, Span<byte> destination);
}

/// <summary>An address space of a model instance as guest memory.</summary>
public sealed class AddressSpaceMemory(MemorySystem memory, AddressSpace space) : IGuestMemory
{
    public MemorySystem Memory { get; } = memory;
    public AddressSpace Space { get; } = space;

    public void Write(ulong addr, ReadOnlySpan<byte> data) => Memory.Write(Space, addr, data);

    public void Read(ulong addr, Span<byte> destination) => Memory.Read(Space, addr, destination);
}

/// <summary>
/// What a guest driver does with a split ring (VIRTIO 1.2 §2.7.13), over any guest memory: lay out the
/// rings, write descriptors, publish heads in the available ring, and read used elements back. The one
/// ring driver of the suite: the model's scenarios use it over an address space (so rings may sit
/// anywhere, MMIO and ROM included), the QEMU driver over qtest.
/// </summary>
public sealed class SplitRingDriver
{
    private ushort _lastUsedSeen;

    public SplitRingDriver(IGuestMemory memory, int num, ulong desc, ulong avail, ulong used)
    {
        Guest = memory;
        Num = num;
        DescAddr = desc;
        AvailAddr = avail;
        UsedAddr = used;
    }

    /// <summary>A driver writing the model's <paramref name="space"/>.</summary>
    public SplitRingDriver(MemorySystem memory, AddressSpace space, int num, ulong desc, ulong avail, ulong used)
        : this(new AddressSpaceMemory(memory, space), num, desc, avail, used) { }

    public IGuestMemory Guest { get; }
    public int Num { get; }
    public ulong DescAddr { get; }
    public ulong AvailAddr { get; }
    public ulong UsedAddr { get; }

    /// <summary>The available index the driver has published.</summary>
    public ushort AvailIdx { get; private set; }

    /// <summary>Zeroes the three rings (a fresh queue) and starts counting from index 0 again.</summary>
    public void ClearRings(bool eventIdx)
    {
        Guest.Write(DescAddr, new byte[VirtioConstants.DescTableSize(Num)]);
        Guest.Write(AvailAddr, new byte[VirtioConstants.AvailSize(Num, eventIdx)]);
        Guest.Write(UsedAddr, new byte[VirtioConstants.UsedSize(Num, eventIdx)]);
        AvailIdx = 0;
        _lastUsedSeen = 0;
    }

    public void WriteDescriptor(ulong table, int index, VringDesc desc)
    {
        Span<byte> b = stackalloc byte[VirtioConstants.DescSize];
        desc.Encode(b);
        Guest.Write(table + (ulong)index * VirtioConstants.DescSize, b);
    }

    public void WriteDescriptor(int index, VringDesc desc) => WriteDescriptor(DescAddr, index, desc);

    /// <summary>Puts heads into the available ring and then publishes the new index (entries before index).</summary>
    public void Publish(IEnumerable<ushort> heads)
    {
        foreach (var head in heads)
        {
            Store16(VirtioConstants.AvailRingAddr(AvailAddr, AvailIdx % Num), head);
            AvailIdx++;
        }
        SetAvailIdx(AvailIdx);
    }

    /// <summary>Writes avail->idx directly (a misbehaving driver may move it anywhere).</summary>
    public void SetAvailIdx(ushort idx)
    {
        AvailIdx = idx;
        Store16(VirtioConstants.AvailIdxAddr(AvailAddr), idx);
    }

    public void SetAvailFlags(ushort flags) => Store16(AvailAddr, flags);

    /// <summary>used_event (avail->ring[num]) for EVENT_IDX.</summary>
    public void SetUsedEvent(ushort value) => Store16(VirtioConstants.UsedEventAddr(AvailAddr, Num), value);

    public ushort UsedIdx()
    {
        Span<byte> b = stackalloc byte[2];
        Guest.Read(VirtioConstants.UsedIdxAddr(UsedAddr), b);
        return BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    /// <summary>The used element in <paramref name="slot"/>: (id, len).</summary>
    public (uint Id, uint Len) UsedElement(int slot)
    {
        Span<byte> b = stackalloc byte[8];
        Guest.Read(VirtioConstants.UsedElemAddr(UsedAddr, slot), b);
        return (BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b[4..]));
    }

    /// <summary>Used elements published since the last call, in ring order: (id, len).</summary>
    public List<(uint Id, uint Len)> CollectUsed()
    {
        var result = new List<(uint, uint)>();
        ushort idx = UsedIdx();
        while (_lastUsedSeen != idx)
        {
            result.Add(UsedElement(_lastUsedSeen % Num));
            _lastUsedSeen++;
        }
        return result;
    }

    private void Store16(ulong addr, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Guest.Write(addr, b);
    }
}
