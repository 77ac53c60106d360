using BenchmarkDotNet.Attributes;
using Conformance.Model;

namespace Conformance.Benchmarks;

/// <summary>Map+unmap pairs beside the floor each should approach (issue: teeth and speed).</summary>
[MemoryDiagnoser]
public class DmaBenchmarks
{
    private MemorySystem _system = null!;
    private AddressSpace _memory = null!;
    private readonly byte[] _page = new byte[4096];
    private readonly byte[] _ram = new byte[1 << 20];
    private readonly byte[] _copy = new byte[4096];

    [GlobalSetup]
    public void Setup()
    {
        _system = new MemorySystem(Layouts.Machine(), Profile.Qemu72);
        _memory = _system.Space("memory");
        _ = _memory.View;
        new Random(1).NextBytes(_page);
    }

    /// <summary>Target: ≥ 10 million pairs/s on one core.</summary>
    [Benchmark]
    public ulong DirectMapUnmap()
    {
        var r = _system.Map(_memory, 0x10000, 4096, true);
        _system.Unmap(r.Mapping!, 4096);
        return r.Length;
    }

    /// <summary>The floor for a direct mapping: a slice of the same bytes.</summary>
    [Benchmark(Baseline = true)]
    public int ArraySlice() => new Span<byte>(_ram, 0x10000, 4096).Length;

    /// <summary>Target: within 3x of copying 4 KiB.</summary>
    [Benchmark]
    public ulong BounceMapUnmap4K()
    {
        var r = _system.Map(_memory, 0xff000000, 4096, true);
        _system.WriteMapped(r.Mapping!, 0, _page);
        _system.Unmap(r.Mapping!, 4096);
        _system.ClearAccessJournal();   // 1,024 journaled callbacks per write-back; keep the journal from growing without bound
        return r.Length;
    }

    /// <summary>
    /// The floor QEMU itself has for the same write-back: flatview_write_continue hands a device whose
    /// accesses are at most 4 bytes 1,024 callbacks, each a call through a function pointer that stores
    /// 4 bytes (pc-testdev iomem). No faithful model of the bounce path gets under this.
    /// </summary>
    [Benchmark]
    public void DeviceCallbacks4K()
    {
        var store = _deviceWrite;
        for (int i = 0; i < 4096; i += 4) store(i, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(_page.AsSpan(i)));
    }

    private Action<int, uint> _deviceWrite = null!;

    [GlobalSetup(Target = nameof(DeviceCallbacks4K))]
    public void SetupCallbacks()
    {
        Setup();
        var registers = _copy;
        _deviceWrite = (offset, value) => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(registers.AsSpan(offset), value);
    }

    /// <summary>The floor for a bounce mapping: copying the 4 KiB once.</summary>
    [Benchmark]
    public unsafe void MemoryCopy4K()
    {
        fixed (byte* src = _page, dst = _copy) Buffer.MemoryCopy(src, dst, 4096, 4096);
    }
}
