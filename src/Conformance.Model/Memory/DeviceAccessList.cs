using System.Collections;

namespace Conformance.Model;

/// <summary>
/// Device callbacks in the order they happened, stored as runs: callbacks of one size, in one direction, to
/// one region, each at the offset right after the one before, kept as one entry plus their values. A bounce
/// write-back to a device is 1,024 four-byte callbacks of this shape (flatview_write_continue dispatches
/// each); one 40-byte record per callback, copied again for the step that made them, cost more than the
/// callbacks themselves. Read as a list, it yields exactly the callbacks made, one <see cref="DeviceAccess"/>
/// each, so everything judged on the sequence sees the same sequence.
/// </summary>
public sealed class DeviceAccessList : IReadOnlyList<DeviceAccess>
{
    /// <summary>Callbacks <see cref="Start"/> .. Start + Count - 1 of the list: offsets FirstOffset,
    /// FirstOffset + Size, …; their values are the list's values at the same indices.</summary>
    private struct Run
    {
        public string Region;
        public bool IsWrite;
        public uint Size;
        public ulong FirstOffset;
        public int Start;
        public int Count;
    }

    private Run[] _runs;
    private int _runCount;
    private ulong[] _values;
    private int _count;

    public static readonly DeviceAccessList Empty = new(Array.Empty<Run>(), 0, Array.Empty<ulong>(), 0);

    internal DeviceAccessList() : this(new Run[4], 0, new ulong[16], 0) { }

    private DeviceAccessList(Run[] runs, int runCount, ulong[] values, int count)
    {
        _runs = runs;
        _runCount = runCount;
        _values = values;
        _count = count;
    }

    public int Count => _count;

    public DeviceAccess this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_count) throw new ArgumentOutOfRangeException(nameof(index));
            return At(RunOf(index), index);
        }
    }

    private DeviceAccess At(int run, int index)
    {
        ref readonly var r = ref _runs[run];
        int k = index - r.Start;
        return new DeviceAccess(r.Region, new MmioAccess(r.IsWrite, r.FirstOffset + (ulong)k * r.Size, r.Size, _values[index]));
    }

    /// <summary>The run holding callback <paramref name="index"/> (binary search over the runs' starts).</summary>
    private int RunOf(int index)
    {
        int lo = 0, hi = _runCount - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_runs[mid].Start <= index) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>Appends one callback: it extends the last run when it continues it.</summary>
    internal void Add(string region, MmioAccess access)
    {
        if (_count == _values.Length) Array.Resize(ref _values, _values.Length * 2);
        _values[_count] = access.Value;
        if (_runCount > 0)
        {
            ref var last = ref _runs[_runCount - 1];
            if (last.Size == access.Size && last.IsWrite == access.IsWrite && ReferenceEquals(last.Region, region)
                && last.FirstOffset + (ulong)last.Count * last.Size == access.Offset)
            {
                last.Count++;
                _count++;
                return;
            }
        }
        if (_runCount == _runs.Length) Array.Resize(ref _runs, _runs.Length * 2);
        _runs[_runCount++] = new Run { Region = region, IsWrite = access.IsWrite, Size = access.Size, FirstOffset = access.Offset, Start = _count, Count = 1 };
        _count++;
    }

    /// <summary>A copy of callbacks <paramref name="from"/> .. Count - 1, which later changes to this list do not touch.</summary>
    internal DeviceAccessList CopyFrom(int from)
    {
        if (from >= _count) return Empty;
        int first = RunOf(from);
        var runs = new Run[_runCount - first];
        for (int i = first; i < _runCount; i++)
        {
            var r = _runs[i];
            int skip = Math.Max(0, from - r.Start);   // only the first run can start before `from`
            r.FirstOffset += (ulong)skip * r.Size;
            r.Count -= skip;
            r.Start = r.Start + skip - from;
            runs[i - first] = r;
        }
        return new DeviceAccessList(runs, runs.Length, _values.AsSpan(from, _count - from).ToArray(), _count - from);
    }

    /// <summary>Forgets the callbacks after the first <paramref name="count"/>.</summary>
    internal void Truncate(int count)
    {
        if (count >= _count) return;
        if (count <= 0)
        {
            _runCount = 0;
            _count = 0;
            return;
        }
        int keep = RunOf(count - 1);
        _runs[keep].Count = count - _runs[keep].Start;
        _runCount = keep + 1;
        _count = count;
    }

    public IEnumerator<DeviceAccess> GetEnumerator()
    {
        for (int run = 0; run < _runCount; run++)
        {
            int end = _runs[run].Start + _runs[run].Count;
            for (int i = _runs[run].Start; i < end; i++) yield return At(run, i);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
