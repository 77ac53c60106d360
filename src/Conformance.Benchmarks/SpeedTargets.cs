using BenchmarkDotNet.Attributes;
using Conformance.Model;
using Conformance.Properties;

namespace Conformance.Benchmarks;

/// <summary>
/// The speed targets of the speed-and-teeth issue in one table, each beside the model's own map+unmap pair
/// (the baseline, so the Ratio column says how many pairs each costs): a generated DMA case of the catalogue
/// (generation, run, recording, oracle and FsCheck; target ≥ 20,000 cases/s, i.e. ≤ 50 µs) and pop+push of a
/// 3-descriptor chain (target ≥ 1 M chains/s, i.e. ≤ 1 µs).
/// </summary>
[MemoryDiagnoser]
public class SpeedTargets
{
    private const int Cases = 100;
    private readonly DmaBenchmarks _dma = new();
    private readonly VirtqueueBenchmarks _queue = new();

    [GlobalSetup]
    public void Setup()
    {
        _dma.Setup();
        _queue.Setup();
    }

    [Benchmark(Baseline = true)]
    public ulong MapUnmapPair() => _dma.DirectMapUnmap();

    [Benchmark]
    public uint PopPushChain() => _queue.PopPush();

    [Benchmark(OperationsPerInvoke = Cases)]
    public bool RefcountBalanceCase() => Check("refcount-balance");

    [Benchmark(OperationsPerInvoke = Cases)]
    public bool WriteBackOnUnmapCase() => Check("write-back-on-unmap");

    [Benchmark(OperationsPerInvoke = Cases)]
    public bool DirtyExactnessCase() => Check("dirty-exactness");

    [Benchmark(OperationsPerInvoke = Cases)]
    public bool MapClientsCase() => Check("map-clients");

    private static bool Check(string property) =>
        Runner.check(Catalogue.find(property).Value, Profile.Qemu72, Conformance.Model.Targets.ModelTarget.Reference, Cases,
            Microsoft.FSharp.Core.FSharpOption<Runner.ReplayToken>.None).Passed;
}
