using BenchmarkDotNet.Attributes;
using Conformance.Model;
using Conformance.Model.Virtio;

namespace Conformance.Benchmarks;

/// <summary>Pop + push of a 3-descriptor virtio-blk-shaped chain (header, data, status) in RAM. Target: ≥ 1 million chains/s.</summary>
[MemoryDiagnoser]
public class VirtqueueBenchmarks
{
    private VirtioDevice _device = null!;
    private SplitRingDriver _driver = null!;

    [GlobalSetup]
    public void Setup()
    {
        var system = new MemorySystem(Layouts.Machine(), Profile.Qemu72);
        var memory = system.Space("memory");
        _driver = new SplitRingDriver(system, memory, 256, 0x10000, 0x11000, 0x12000);
        _driver.ClearRings(false);
        _device = new VirtioDevice(system, memory, 1, 0);
        _device.SetupQueue(0, 256, 0x10000, 0x11000, 0x12000);
        _driver.WriteDescriptor(0, new VringDesc(0x20000, 16, VirtioConstants.DescFlagNext, 1));
        _driver.WriteDescriptor(1, new VringDesc(0x21000, 512, VirtioConstants.DescFlagNext | VirtioConstants.DescFlagWrite, 2));
        _driver.WriteDescriptor(2, new VringDesc(0x22000, 1, VirtioConstants.DescFlagWrite, 0));
    }

    [Benchmark]
    public uint PopPush()
    {
        _driver.Publish(new ushort[] { 0 });
        var e = _device.Pop(_device.Queues[0]).Element!;
        _device.Push(_device.Queues[0], e, 513);
        return e.Head;
    }
}
