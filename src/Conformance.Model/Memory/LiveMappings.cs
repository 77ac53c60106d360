namespace Conformance.Model;

/// <summary>
/// The model's own record of live mappings (QEMU keeps none: the caller holds the pointer). Threads add
/// and remove concurrently, so changes are serialised by a <see cref="ShortLock"/>.
/// </summary>
internal sealed class LiveMappings
{
    private readonly List<Mapping> _items = new();
    private readonly ShortLock _lock = new();

    public IReadOnlyList<Mapping> Items => _items;

    public void Add(Mapping m)
    {
        _lock.Enter();
        _items.Add(m);
        _lock.Exit();
    }

    public void Remove(Mapping m)
    {
        _lock.Enter();
        _items.Remove(m);
        _lock.Exit();
    }
}
