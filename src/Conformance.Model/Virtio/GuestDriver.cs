using System.Buffers.Binary;

namespace Conformance.Model.Virtio;

/// <summary>
/// What a guest driver does with a split ring (VIRTIO 1.2 §2.7.13): lay out the rings, write descriptors,
/// publish heads in the available ring, and read used elements back. It writes guest memory the way a
/// CPU would (address_space_write through the same address space), so rings may sit anywhere.
/// </summary>
public sealed class GuestDriver
{
    private ushort _lastUsedSeen;

    public GuestDriver(MemorySystem memory, AddressSpace space, int num, ulong desc, ulong avail, ulong used)
    {
        Memory = memory;
        Space = space;
        Num = num;
        DescAddr = desc;
        AvailAddr = avail;
        UsedAddr = used;
    }

    public MemorySystem Memory { get; }
    public AddressSpace Space { get; }
    public int Num { get; }
    public ulong DescAddr { get; }
    public ulong AvailAddr { get; }
    public ulong UsedAddr { get; }

    /// <summary>The available index the driver has published.</summary>
    public ushort AvailIdx { get; private set; }

    /// <summary>Zeroes the three rings (a fresh queue).</summary>
    public void ClearRings(bool eventIdx)
    {
        Memory.Write(Space, DescAddr, new byte[VirtioConstants.DescTableSize(Num)]);
        Memory.Write(Space, AvailAddr, new byte[VirtioConstants.AvailSize(Num, eventIdx)]);
        Memory.Write(Space, UsedAddr, new byte[VirtioConstants.UsedSize(Num, eventIdx)]);
    }

    public void WriteDescriptor(ulong table, int index, VringDesc desc)
    {
        Span<byte> b = stackalloc byte[VirtioConstants.DescSize];
        desc.Encode(b);
        Memory.Write(Space, table + (ulong)index * VirtioConstants.DescSize, b);
    }

    public void WriteDescriptor(int index, VringDesc desc) => WriteDescriptor(DescAddr, index, desc);

    /// <summary>Puts heads into the available ring and then publishes the new index (entries before index).</summary>
    public void Publish(IEnumerable<ushort> heads)
    {
        foreach (var head in heads)
        {
            Memory.StoreU16Le(Space, VirtioConstants.AvailRingAddr(AvailAddr, AvailIdx % Num), head);
            AvailIdx++;
        }
        SetAvailIdx(AvailIdx);
    }

    /// <summary>Writes avail->idx directly (a misbehaving driver may move it anywhere).</summary>
    public void SetAvailIdx(ushort idx)
    {
        AvailIdx = idx;
        Memory.StoreU16Le(Space, VirtioConstants.AvailIdxAddr(AvailAddr), idx);
    }

    public void SetAvailFlags(ushort flags) => Memory.StoreU16Le(Space, AvailAddr, flags);

    /// <summary>used_event (avail->ring[num]) for EVENT_IDX.</summary>
    public void SetUsedEvent(ushort value) => Memory.StoreU16Le(Space, VirtioConstants.UsedEventAddr(AvailAddr, Num), value);

    public ushort UsedIdx() => Memory.LoadU16Le(Space, VirtioConstants.UsedIdxAddr(UsedAddr));

    /// <summary>Used elements published since the last call, in ring order: (id, len).</summary>
    public List<(uint Id, uint Len)> CollectUsed()
    {
        var result = new List<(uint, uint)>();
        ushort idx = UsedIdx();
        Span<byte> b = stackalloc byte[8];
        while (_lastUsedSeen != idx)
        {
            Memory.Read(Space, VirtioConstants.UsedElemAddr(UsedAddr, _lastUsedSeen % Num), b);
            result.Add((BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b[4..])));
            _lastUsedSeen++;
        }
        return result;
    }
}
