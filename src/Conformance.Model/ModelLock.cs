namespace Conformance.Model;

/// <summary>
/// A mutex of QEMU's (map_client_list_lock, the BQL). On real threads it is a monitor; under an
/// <see cref="IInterleaver"/> only one thread runs at a time, so taking it is a check-and-set between
/// interleaving points, and a thread finding it held reports itself blocked until the owner lets go.
/// </summary>
internal sealed class ModelLock
{
    private readonly string _name;
    private int _owner;   // managed thread id of the holder, 0 when free (interleaved mode only)
    private int _depth;

    public ModelLock(string name) => _name = name;

    public void Enter(IInterleaver? interleaver)
    {
        if (interleaver is null)
        {
            Monitor.Enter(this);
            return;
        }
        int me = Environment.CurrentManagedThreadId;
        interleaver.Point($"lock {_name}");
        while (_owner != 0 && _owner != me) interleaver.Blocked($"wait for {_name}");
        _owner = me;
        _depth++;
    }

    public void Exit(IInterleaver? interleaver)
    {
        if (interleaver is null)
        {
            Monitor.Exit(this);
            return;
        }
        if (--_depth == 0) _owner = 0;
    }
}
