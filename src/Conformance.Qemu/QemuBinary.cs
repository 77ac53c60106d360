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

    /// <summary>"7.2", "10.0", "11.1": the release a version belongs to, as fixtures/layouts/qemu-*/ names it.</summary>
    public string Release => $"{Version.Major}.{Version.Minor}";

    /// <summary>The model profile for this version: one global bounce buffer up to 9.0, per-AS budgets from 9.2.
    /// (9.1's one-buffer-per-address-space is not modelled.)</summary>
    public Profile Profile => Version < new Version(9, 1) ? Profile.Qemu72 : Profile.Qemu92;

    [GeneratedRegex(@"QEMU emulator version (\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionRegex();
}
