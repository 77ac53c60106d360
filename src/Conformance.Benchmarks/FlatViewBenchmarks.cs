using BenchmarkDotNet.Attributes;
using Conformance.Model;

namespace Conformance.Benchmarks;

/// <summary>Address translation in a q35-sized layout (the committed QEMU dump) and in a 1,000-region one.</summary>
public class FlatViewBenchmarks
{
    private FlatView _q35 = null!;
    private FlatView _thousand = null!;
    private ulong[] _addresses = null!;

    [GlobalSetup]
    public void Setup()
    {
        string root = Conformance.Properties.Settings.root();
        var dir = Path.Combine(root, "fixtures", "layouts", "qemu-7.2");
        var q35 = MtreeDump.Parse(File.ReadAllText(Path.Combine(dir, "q35.mtree-D.txt")), "q35");
        _q35 = new MemorySystem(q35, Profile.Qemu72).Space("memory").View;
        _thousand = new MemorySystem(Layouts.Thousand(), Profile.Qemu72).Space("memory").View;
        var rng = new Random(7);
        _addresses = Enumerable.Range(0, 1024).Select(_ => (ulong)rng.NextInt64(0, 0x800000)).ToArray();
    }

    [Benchmark(OperationsPerInvoke = 1024)]
    public ulong TranslateQ35()
    {
        ulong sum = 0;
        foreach (var a in _addresses) sum += _q35.Translate(a).Xlat;
        return sum;
    }

    [Benchmark(OperationsPerInvoke = 1024)]
    public ulong Translate1000Regions()
    {
        ulong sum = 0;
        foreach (var a in _addresses) sum += _thousand.Translate(a).Xlat;
        return sum;
    }
}
