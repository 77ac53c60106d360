using Conformance.Model;
using Conformance.Model.Scenarios;

namespace Conformance.Cli;

/// <summary>`conformance explain FILE`: the scenario step by step in the words of the QEMU rules.</summary>
public static class ExplainCommand
{
    public static int Run(Options options, TextWriter stdout)
    {
        options.Allow("profile", "variant");
        if (options.Positional.Count != 1) throw new UsageException("explain takes one scenario file");
        var scenario = CommandLine.LoadScenario(options.Positional[0], options);
        if (scenario.IsConcurrent) return ConcurrentCases.Run(options.Positional[0], scenario, options, stdout, explain: true);
        var impl = CommandLine.VariantOf(options);
        stdout.Write(ScenarioExplanation.Render(ScenarioRunner.Run(scenario, impl.Variant.Fault, impl.Variant.VirtioFault)));
        return 0;
    }
}
