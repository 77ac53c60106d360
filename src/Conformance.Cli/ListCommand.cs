using Conformance.Model;
using Conformance.Properties;

namespace Conformance.Cli;

/// <summary>`conformance list`: the catalogue with its rules, and the registered findings.</summary>
public static class ListCommand
{
    public static int Run(Options options, TextWriter stdout)
    {
        options.Allow();
        foreach (var e in Catalogue.all)
        {
            stdout.WriteLine($"P{e.Number} {e.Name}{(e.IsConcurrent ? " (concurrent)" : "")}: {e.Title}");
            foreach (var rule in e.Rules) stdout.WriteLine($"    rule: {rule}");
            var variants = new[] { Profile.Qemu72, Profile.Qemu92 }.SelectMany(p => e.Broken.Invoke(p)).Select(v => v.ToString()).Distinct();
            stdout.WriteLine($"    rejects: {string.Join(", ", variants)}");
        }
        stdout.WriteLine();
        stdout.WriteLine("registered findings (QEMU itself breaks the property as stated):");
        foreach (var f in Findings.all)
            stdout.WriteLine($"  {f.Id} [{f.Property}] {f.Title} — {f.Scenario}");
        return 0;
    }
}
