using Conformance.Model;

namespace Conformance.Cli;

/// <summary>`conformance layout FILE`: an `info mtree` dump rendered by the model as `info mtree -f` prints it.</summary>
public static class LayoutCommand
{
    public static int Run(Options options, TextWriter stdout)
    {
        options.Allow("terminates");
        if (options.Positional.Count != 1) throw new UsageException("layout takes one `info mtree` dump file");
        string path = options.Positional[0];
        string text = CommandLine.ReadFile(path);
        var terminating = new List<string>();
        if (options.Get("terminates") is { } names)
            terminating.AddRange(names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        else
        {
            // fixtures/layouts/<machine>.mtree.txt pairs with <machine>.terminates.txt
            foreach (var hints in new[] { path + ".terminates.txt", path.Replace(".mtree.txt", ".terminates.txt") })
            {
                if (hints != path && File.Exists(hints))
                {
                    terminating.AddRange(File.ReadAllLines(hints).Select(l => l.Trim()).Where(l => l.Length > 0));
                    break;
                }
            }
        }
        var spec = MtreeDump.Parse(text, terminating, Path.GetFileName(path));
        var system = new MemorySystem(spec, Profile.Qemu72);
        stdout.Write(FlatViewText.Print(system.AddressSpaces));
        return 0;
    }
}
