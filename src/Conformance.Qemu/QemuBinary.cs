using System.Diagnostics;
using System.Text.RegularExpressions;
using Conformance.Model;

namespace Conformance.Qemu;

/// <summary>Which qemu-system-x86_64 to run (QEMU environment variable, else PATH) and its version.</summary>
public sealed partial record QemuBinary(string Path, Version Version)
{
    public const string Variable = "QEMU";

    public static QemuBinary? Find(string? explicitPath = null)
    {
        string? path = explicitPath ?? Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(path))
            path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
                .Select(d => System.IO.Path.Combine(d, "qemu-system-x86_64")).FirstOrDefault(File.Exists);
        if (path is null || !File.Exists(path)) return null;
        var psi = new ProcessStartInfo(path, "-version") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(10_000))
        {
            p.Kill(true);
            throw new QemuException($"{path} -version did not answer within 10 s");
        }
        var m = VersionRegex().Match(output);
        if (!m.Success) throw new QemuException($"{path} -version printed no version: {output.Trim()}");
        return new QemuBinary(path, Version.Parse(m.Groups[1].Value));
    }

    /// <summary>The Debian suites scripts/fetch-qemu unpacks into the cache: QEMU 10.0 (trixie) and 11.x (sid).</summary>
    public static readonly IReadOnlyList<string> FetchedSuites = new[] { "trixie", "sid" };

    /// <summary>Where scripts/fetch-qemu keeps them: $CONFORMANCE_QEMU_CACHE, else $XDG_CACHE_HOME or ~/.cache, /conformance/qemu.</summary>
    public static string CacheDirectory =>
        Environment.GetEnvironmentVariable("CONFORMANCE_QEMU_CACHE") is { Length: > 0 } c
            ? c
            : System.IO.Path.Combine(
                Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
                    : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
                "conformance", "qemu");

    /// <summary>One line telling how to get the QEMUs that are not here.</summary>
    public const string FetchHint = "scripts/fetch-qemu all fetches Debian's QEMU 10.0 and 11.x into the cache (about 10 s and 80 MB each, no root)";

    /// <summary>
    /// Every QEMU this machine offers, one per version: $QEMU or the one on PATH, then each suite
    /// scripts/fetch-qemu has completed in the cache (a fetch is complete when version.txt exists).
    /// </summary>
    public static IReadOnlyList<QemuBinary> Available()
    {
        var found = new List<QemuBinary>();
        if (Find() is { } installed) found.Add(installed);
        foreach (var suite in FetchedSuites)
        {
            string dir = System.IO.Path.Combine(CacheDirectory, suite);
            if (File.Exists(System.IO.Path.Combine(dir, "version.txt")) && Find(System.IO.Path.Combine(dir, "qemu-system-x86_64")) is { } fetched
                && found.All(q => q.Version != fetched.Version))
                found.Add(fetched);
        }
        return found;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Aborts = new();
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> DeviceHelp = new();

    /// <summary>
    /// Whether QMP x-query-virtio-status kills this QEMU (11.1.3 fails an assertion in the QAPI output
    /// visitor on any virtio-blk-pci: finding F-QEMU-1). Asked once per binary, of a throwaway process.
    /// </summary>
    public bool StatusQueryAborts => Aborts.GetOrAdd(Path, _ => ProbeStatusQuery());

    private bool ProbeStatusQuery()
    {
        string commands =
            "{\"execute\":\"qmp_capabilities\"}\n" +
            "{\"execute\":\"x-query-virtio-status\",\"arguments\":{\"path\":\"/machine/peripheral/blk0/virtio-backend\"}}\n" +
            "{\"execute\":\"quit\"}\n";
        var (output, _) = RunWithInput(commands, "-M", "q35", "-S", "-display", "none", "-nodefaults", "-qmp", "stdio",
            "-drive", "if=none,id=d0,file=null-co://,format=raw", "-device", "virtio-blk-pci,drive=d0,id=blk0");
        return !output.Contains("\"broken\"", StringComparison.Ordinal);
    }

    /// <summary>Whether the device takes a property (its `-device NAME,help` lists it), e.g.
    /// x-max-bounce-buffer-size, which PCI devices have from QEMU 9.1 on.</summary>
    public bool DeviceHasProperty(string device, string property) =>
        DeviceHelp.GetOrAdd(Path + "\0" + device, _ => RunWithInput("", "-device", device + ",help").Output)
            .Contains("  " + property + "=", StringComparison.Ordinal);

    private (string Output, int ExitCode) RunWithInput(string input, params string[] args)
    {
        var psi = new ProcessStartInfo(Path) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new QemuException($"could not start {Path}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            p.StandardInput.Write(input);
            p.StandardInput.Close();
        }
        catch (IOException) { }   // QEMU died before reading: the output says why
        if (!p.WaitForExit(20_000))
        {
            p.Kill(true);
            throw new QemuException($"{Path} {string.Join(' ', args)} did not finish within 20 s");
        }
        return (stdout.Result + stderr.Result, p.ExitCode);
    }

    /// <summary>"7.2", "10.0", "11.1": the release a version belongs to, as fixtures/layouts/qemu-*/ names it.</summary>
    public string Release => $"{Version.Major}.{Version.Minor}";

    /// <summary>
    /// The model profile for this version: <see cref="Profile.Qemu72"/> up to 9.0 (one global bounce buffer),
    /// <see cref="Profile.Qemu92"/> from 9.2 (a byte budget per address space). QEMU 9.1 had one buffer per
    /// address space, which no profile models: asking for its profile is an error (pass one explicitly).
    /// (docs/qemu-versions.md, "Bounce buffers")
    /// </summary>
    public Profile Profile => Version < new Version(9, 1) ? Profile.Qemu72
        : Version >= new Version(9, 2) ? Profile.Qemu92
        : throw new QemuException($"QEMU {Version} bounces through one buffer per address space, which no model profile covers (Qemu72: up to 9.0; Qemu92: 9.2 and later); choose one with --profile");

    [GeneratedRegex(@"QEMU emulator version (\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionRegex();
}
