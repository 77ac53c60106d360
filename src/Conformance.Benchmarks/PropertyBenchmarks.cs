using BenchmarkDotNet.Attributes;
using Conformance.Model;
using Conformance.Properties;

namespace Conformance.Benchmarks;

/// <summary>Generated cases per second for property families (100 cases per invocation). Target: ≥ 20,000/s for the DMA properties.</summary>
[MemoryDiagnoser]
public class PropertyBenchmarks
{
    [Params("refcount-balance", "write-back-on-unmap", "dirty-exactness", "flattening", "used-ring", "blk-requests")]
    public string Property { get; set; } = "";

    [Benchmark(OperationsPerInvoke = 100)]
    public bool HundredCases()
    {
        var entry = Catalogue.find(Property).Value;
        var outcome = Runner.check(entry, Profile.Qemu72, Conformance.Model.Targets.ModelTarget.Reference, 100, Microsoft.FSharp.Core.FSharpOption<Runner.ReplayToken>.None);
        return outcome.Passed;
    }
}
