namespace Conformance.Model;

/// <summary>
/// A mutex of QEMU's (map_client_list_lock, the BQL). On real threads it is a compare-and-swap spin lock
/// (its sections are short, and the BQL is taken once per device access, where a monitor cost a quarter of
/// a 4 KiB bounce write-back); under an <see cref="IInterleaver"/> only one thread runs at a time, so taking
/// it is a check-and-set between interleaving points, and a thread finding it held reports itself blocked
/// until the owner lets go. Not reentrant on real threads (nothing in the model takes one twice).
/// </summary>
internal sealed class ModelLock
{
    private readonly string _name;
    private readonly bool _pointOnEnter;
    private int _owner;   // managed thread id of the holder, 0 when free (interleaved mode only)
    private int _depth;
    private readonly ShortLock _free = new();

    /// <param name="pointOnEnter">Whether taking the lock is itself an interleaving point. The BQL is not:
    /// nothing inside a device callback is a point, so under an interleaver it is never contended, and
    /// interleaving between the single accesses of one transfer would only reorder bytes that no other thread
    /// touches (the properties give every thread its own bytes).</param>
    public ModelLock(string name, bool pointOnEnter = true)
    {
        _name = name;
        _pointOnEnter = pointOnEnter;
    }

    public void Enter(IInterleaver? interleaver)
    {
        if (interleaver is null)
        {
            _free.Enter();
            return;
        }
        int me = Environment.CurrentManagedThreadId;
        if (_pointOnEnter) interleaver.Point($"lock {_name}");
        while (_owner != 0 && _owner != me) interleaver.Blocked($"wait for {_name}");
        _owner = me;
        _depth++;
    }

    public void Exit(IInterleaver? interleaver)
    {
        if (interleaver is null)
        {
            _free.Exit();
            return;
        }
        if (--_depth == 0) _owner = 0;
    }
}
