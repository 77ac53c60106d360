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

    /// <summary>The model profile for this version: one global bounce buffer up to 9.0, per-AS budgets from 9.2.
    /// (9.1's one-buffer-per-address-space is not modelled.)</summary>
    public Profile Profile => Version < new Version(9, 1) ? Profile.Qemu72 : Profile.Qemu92;

    [GeneratedRegex(@"QEMU emulator version (\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionRegex();
}
