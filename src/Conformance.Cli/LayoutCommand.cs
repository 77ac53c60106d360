using Conformance.Model;

namespace Conformance.Cli;

/// <summary>
/// `conformance layout TREE [--flat FLAT]`: an `info mtree` dump rendered by the model as `info mtree -f`
/// prints it; with QEMU's own `info mtree -f` of the same machine, the two compared per address space.
/// </summary>
public static class LayoutCommand
{
    public static int Run(Options options, TextWriter stdout, TextWriter stderr)
    {
        options.Allow("flat");
        if (options.Positional.Count != 1) throw new UsageException("layout takes one `info mtree` dump file");
        string path = options.Positional[0];
        string? flatPath = options.Get("flat");
        string? flat = flatPath is null ? null : CommandLine.ReadFile(flatPath);
        var import = MtreeDump.Import(CommandLine.ReadFile(path), new MtreeImportOptions { Source = path, Flat = flat });
        foreach (var warning in import.Warnings) stderr.WriteLine(warning);
        var system = new MemorySystem(import.Layout, Profile.Qemu72);
        string mine = FlatViewText.Print(system.AddressSpaces, import.Dialect);
        if (flat is null)
        {
            stdout.Write(mine);
            return 0;
        }
        var differences = FlatViewComparison.Compare(FlatViewDump.Parse(flat, flatPath!), FlatViewDump.Parse(mine, "model"));
        stdout.Write(FlatViewComparison.Report(differences));
        return differences.All(d => d.Equal) ? 0 : 1;
    }
}
