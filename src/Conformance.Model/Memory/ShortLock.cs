namespace Conformance.Model;

/// <summary>
/// A compare-and-swap spin lock for the model's own bookkeeping (live mappings, dirty bitmaps), whose
/// critical sections are a few instructions: uncontended it costs one atomic instruction, a fraction of a
/// monitor on the single-threaded path the benchmarks measure. Not reentrant; never held across an
/// interleaving point.
/// </summary>
internal sealed class ShortLock
{
    private int _busy;

    public void Enter()
    {
        if (Interlocked.CompareExchange(ref _busy, 1, 0) == 0) return;
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref _busy, 1, 0) != 0) spin.SpinOnce();
    }

    public void Exit() => Volatile.Write(ref _busy, 0);
}
