using System.Text;
using Conformance.Model.Targets;

namespace Conformance.Model.Scenarios;

/// <summary>
/// The canonical, human-readable trace of a run: one line per operation with its outcome and effects,
/// then the final state. Deterministic, so it can be snapshot-tested and diffed.
/// </summary>
public static class ScenarioTrace
{
    public static string Render(ScenarioRun run) => Render(run.Observe());

    /// <summary>The trace of any target's observation (what a target cannot show is left out).</summary>
    public static string Render(Observation run)
    {
        var sb = new StringBuilder();
        sb.Append("profile ").Append(run.Scenario.Profile).Append('\n');
        foreach (var step in run.Steps)
        {
            sb.Append(step.Index + 1).Append(". ").Append(Describe(step.Op));
            if (step.Skipped is not null)
            {
                sb.Append(" -> skipped: ").Append(step.Skipped).Append('\n');
                continue;
            }
            var outcome = new List<string>();
            if (step.Map is { } map)
            {
                if (map.Mapping is { } m)
                    outcome.Add(m.Kind == MappingKind.Direct
                        ? $"direct {m.Region}+0x{m.Xlat:x}, {map.Length} bytes"
                        : $"bounce, {map.Length} bytes (first region {m.Region})");
                else outcome.Add(map.Failure == MapFailure.ZeroLength ? "NULL (zero length)" : "NULL (no bounce space)");
            }
            if (step.Unmap is { } u && step.Op is UnmapOp uo && run.Mappings[uo.Id] is { Kind: MappingKind.Bounce, IsWrite: true })
            {
                string marks = u.NeverProducedBytesWrittenBack > 0 ? $", {u.NeverProducedBytesWrittenBack} never-produced bytes" : "";
                marks += u.ZeroFillBytesWrittenBack > 0 ? $", {u.ZeroFillBytesWrittenBack} zero-fill bytes not written by the caller" : "";
                outcome.Add($"wrote back {u.BytesWrittenBack} bytes{marks}");
            }
            if (step.BytesRead is { } bytes) outcome.Add("read " + Hex(bytes));
            outcome.AddRange(DeviceAccessRuns(step.DeviceAccesses));
            foreach (var g in step.NewlyDirty.GroupBy(d => (d.Client, d.Block)))
                outcome.Add($"dirty {g.Key.Client.ToString().ToLowerInvariant()} {g.Key.Block} pages {Pages(g.Select(d => d.Page))}");
            foreach (var (owner, before, count) in RefChanges(run.Steps, step))
                outcome.Add($"{(count > before ? "ref" : "unref")} {owner} -> {count}");
            if (step.Virtio is { } v)
            {
                if (v.Popped is not null) outcome.Add($"popped head {v.PoppedHead}");
                if (v.Error is not null) outcome.Add($"virtio_error \"{v.Error}\"");
                foreach (var (id, len) in v.NewUsed) outcome.Add($"used {{id {id}, len {len}}}");
                outcome.Add($"queue: last_avail {v.LastAvailIdx}, used {v.UsedIdx}, inuse {v.InUse}{(v.InFlight > 0 ? $", {v.InFlight} in flight" : "")}{(v.Broken ? ", BROKEN" : "")}");
            }
            if (step.Scheduled.Count > 0) outcome.Add("scheduled " + string.Join(", ", step.Scheduled));
            if (step.Ran.Count > 0) outcome.Add("ran " + string.Join(", ", step.Ran));
            sb.Append(outcome.Count == 0 ? " -> ok" : " -> " + string.Join("; ", outcome)).Append('\n');
        }

        sb.Append("final:\n");
        var mem = run.Memory;
        var refs = mem.RefCounts.Where(o => o.Value != Owner.Baseline).OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}").ToList();
        sb.Append("  references above baseline: ").Append(refs.Count == 0 ? "none" : string.Join(", ", refs)).Append('\n');
        var live = mem.LiveIds;
        sb.Append("  live mappings: ").Append(live.Count == 0 ? "none" : string.Join(", ", live)).Append('\n');
        sb.Append("  bounce bytes in use: ").Append(string.Join(", ", mem.BounceBytesInUse.Select(a => $"{a.Key} {a.Value}"))).Append('\n');
        foreach (var (client, dirty) in mem.DirtyPages)
        {
            var pages = dirty.GroupBy(p => p.Block).OrderBy(g => g.Key, StringComparer.Ordinal)
                .Select(g => $"{g.Key} pages {Pages(g.Select(p => p.Page))}").ToList();
            sb.Append("  dirty ").Append(client.ToString().ToLowerInvariant()).Append(": ").Append(pages.Count == 0 ? "none" : string.Join("; ", pages)).Append('\n');
        }
        if (run.Virtio is { } vc)
        {
            sb.Append("  virtio: ").Append(vc.Broken ? "broken (" + string.Join("; ", vc.Errors) + ")" : "working")
              .Append($", status 0x{vc.Status:x}, interrupts {vc.Interrupts}\n");
        }
        var pending = mem.PendingBottomHalves;
        if (pending.Count > 0) sb.Append("  pending bottom halves: ").Append(string.Join(", ", pending)).Append('\n');
        return sb.ToString();
    }

    /// <summary>Owners whose reference count a step changed: (owner, before, after), by name.</summary>
    public static IEnumerable<(string Owner, int Before, int After)> RefChanges(IReadOnlyList<StepRecord> steps, StepRecord step)
    {
        var previous = step.Index == 0 ? null : steps[step.Index - 1].RefCounts;
        foreach (var (owner, count) in step.RefCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            int before = previous is not null && previous.TryGetValue(owner, out var b) ? b : Owner.Baseline;
            if (before != count) yield return (owner, before, count);
        }
    }

    public static string Describe(ScenarioOp op) => op switch
    {
        MapOp m => $"map {m.Id} {m.Space} 0x{m.Addr:x} len {m.Len} {(m.Write ? "write" : "read")}",
        WriteMappedOp w => w.Data is not null ? $"write through {w.Id} +{w.Offset} {Hex(w.Data)}" : $"fill {w.Id} from +{w.Offset} with 0x{w.FillByte:x2}",
        ReadMappedOp r => $"read through {r.Id} +{r.Offset} len {(r.Len is { } l ? l.ToString() : "rest")}",
        UnmapOp u => $"unmap {u.Id} access_len {(u.AccessPercent is { } p ? $"{p}% of the mapped length" : u.AccessLen is { } a ? a.ToString() : "all")}",
        MapOrWaitOp m => $"map {m.Id} {m.Space} 0x{m.Addr:x} len {m.Len} {(m.Write ? "write" : "read")}, waiting as map client {m.Client} while it fails",
        ServeQueueOp q => $"serve a queue of {q.QueueSize} on {q.Space} at desc 0x{q.Desc:x} avail 0x{q.Avail:x} used 0x{q.Used:x}: heads {string.Join(", ", q.Heads)} of "
            + DescribeEntries(q.Entries),
        ReadOp r => $"read {r.Space} 0x{r.Addr:x} len {r.Len}",
        WriteOp w => $"write {w.Space} 0x{w.Addr:x} {Hex(w.Data)}",
        RegisterClientOp c => $"register map client {c.Client} on {c.Space}",
        UnregisterClientOp c => $"unregister map client {c.Client} on {c.Space}",
        RunBottomHalvesOp => "run bottom halves",
        VirtioSetupOp v => $"virtio-blk on {v.Space}: queue of {v.QueueSize} at desc 0x{v.Desc:x} avail 0x{v.Avail:x} used 0x{v.Used:x}{(v.EventIdx ? ", event_idx" : "")}{(v.Indirect ? ", indirect" : "")}{(v.Version1 ? ", version_1" : "")}, {v.DiskSectors} sectors",
        DescriptorsOp d => $"descriptors{(d.Table is { } t ? $" in table 0x{t:x}" : "")}: " + DescribeEntries(d.Entries),
        PublishOp p => $"publish heads {string.Join(", ", p.Heads)}",
        AvailIdxOp a => $"set avail idx {a.Idx}",
        InterruptSuppressionOp si => $"avail flags 0x{si.Flags:x}, used_event {si.UsedEvent}",
        KickOp => "kick",
        CompleteIoOp => "block layer completes I/O",
        PopOp po => $"pop {po.Element}",
        ReleaseOp r => $"{r.How} {r.Element} len {r.Len}",
        VirtioResetOp => "virtio reset",
        _ => op.ToString()!,
    };

    private static string DescribeEntries(IReadOnlyList<DescriptorEntry> entries) =>
        string.Join(", ", entries.Select(e => $"[{e.Index}] 0x{e.Addr:x}+{e.Len}{DescFlags(e.Flags)}{((e.Flags & 1) != 0 ? $" next {e.Next}" : "")}"));

    /// <summary>
    /// Device callbacks, with runs of four or more callbacks to one region in one direction, of one size,
    /// at consecutive offsets folded into one line (first and last offset, count, and a hash of the values).
    /// </summary>
    public static IEnumerable<string> DeviceAccessRuns(IReadOnlyList<DeviceAccess> accesses)
    {
        int i = 0;
        while (i < accesses.Count)
        {
            int j = i;
            while (j + 1 < accesses.Count
                   && accesses[j + 1].Region == accesses[i].Region
                   && accesses[j + 1].Access.IsWrite == accesses[i].Access.IsWrite
                   && accesses[j + 1].Access.Size == accesses[i].Access.Size
                   && accesses[j + 1].Access.Offset == accesses[j].Access.Offset + accesses[j].Access.Size)
                j++;
            if (j - i + 1 < 4)
            {
                for (int k = i; k <= j; k++) yield return $"{accesses[k].Region}: {accesses[k].Access}";
            }
            else
            {
                var first = accesses[i].Access;
                var values = string.Join(",", Enumerable.Range(i, j - i + 1).Select(k => accesses[k].Access.Value.ToString("x")));
                yield return $"{accesses[i].Region}: {j - i + 1} {(first.IsWrite ? "writes" : "reads")} of size {first.Size} at +0x{first.Offset:x}..+0x{accesses[j].Access.Offset:x} (values fnv {MemoryTopology.StableHash(values):x8})";
            }
            i = j + 1;
        }
    }

    private static string DescFlags(ushort flags) =>
        ((flags & 1) != 0 ? " NEXT" : "") + ((flags & 2) != 0 ? " WRITE" : "") + ((flags & 4) != 0 ? " INDIRECT" : "") + ((flags & ~7) != 0 ? $" flags 0x{flags:x}" : "");

    public static string Hex(byte[] bytes)
    {
        if (bytes.Length <= 32) return bytes.Length == 0 ? "(0 bytes)" : Convert.ToHexString(bytes).ToLowerInvariant();
        return $"{Convert.ToHexString(bytes, 0, 16).ToLowerInvariant()}... ({bytes.Length} bytes, fnv {MemoryTopology.StableHash(Convert.ToHexString(bytes)):x8})";
    }

    /// <summary>Page indices as compact ranges: 0-3,7.</summary>
    public static string Pages(IEnumerable<ulong> pages)
    {
        var sorted = pages.Distinct().Order().ToList();
        var parts = new List<string>();
        for (int i = 0; i < sorted.Count;)
        {
            int j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(i == j ? $"{sorted[i]}" : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }
        return string.Join(",", parts);
    }
}
