using Conformance.Properties;
using Microsoft.FSharp.Core;

namespace Conformance.Cli;

/// <summary>
/// `conformance approve [--list] [--reject]`: shows each pending snapshot's diff against the approved one
/// and moves it over (or only lists, or discards). Pending snapshots are the new versions a failing
/// snapshot test left in snapshots/**/__snapshots__/__mismatch__/.
/// </summary>
public static class ApproveCommand
{
    public static int Run(Options options, TextWriter stdout)
    {
        bool list = options.Get("list") is not null, reject = options.Get("reject") is not null;
        if (list && reject) throw new UsageException("give --list or --reject, not both");
        var pending = SnapshotStore.pending(Settings.root()).ToList();
        if (pending.Count == 0)
        {
            stdout.WriteLine("nothing to approve: no pending snapshots under snapshots/ (run the tests first)");
            return 1;
        }
        foreach (var p in pending)
        {
            stdout.WriteLine($"== {p.Name}{(File.Exists(p.Approved) ? "" : " (new)")}");
            stdout.Write(SnapshotStore.diff(p));
            if (list) continue;
            if (reject) SnapshotStore.reject(p); else SnapshotStore.approve(p);
        }
        stdout.WriteLine(list ? $"{pending.Count} pending snapshot(s); approve with: conformance approve"
            : reject ? $"rejected {pending.Count} pending snapshot(s)" : $"approved {pending.Count} snapshot(s); commit snapshots/");
        return 0;
    }
}
