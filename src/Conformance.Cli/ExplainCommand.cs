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
        string path = options.Positional[0];
        Scenario scenario;
        try
        {
            scenario = ScenarioJson.Parse(CommandLine.ReadFile(path));
        }
        catch (ScenarioFormatException e)
        {
            throw new UsageException($"{path}: {e.Message}");
        }
        if (options.Get("profile") is { } p) scenario = scenario with { Profile = CommandLine.ParseProfile(p) };
        var fault = options.Get("variant") is { } v ? CommandLine.ParseFault(v) : Fault.None;
        stdout.Write(ScenarioExplanation.Render(ScenarioRunner.Run(scenario, fault)));
        return 0;
    }
}
