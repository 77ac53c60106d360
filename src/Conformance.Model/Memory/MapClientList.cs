namespace Conformance.Model;

/// <summary>
/// Map clients waiting for bounce space (softmmu/physmem.c: map_client_list, map_client_list_lock,
/// cpu_register_map_client / cpu_unregister_map_client / cpu_notify_map_clients_locked). A client is a
/// bottom half: notifying schedules it and removes its record, so each registration fires at most once.
/// The list is replaced as a whole on every change; callers hold <see cref="Lock"/> around each use
/// (QEMU's QLIST_* operations are only safe under the mutex), and every read-modify-write has an
/// interleaving point in its middle, so a caller that forgets the lock loses updates as QEMU would.
/// </summary>
internal sealed class MapClientList
{
    private string[] _clients = Array.Empty<string>();

    public ModelLock Lock { get; } = new("map_client_list_lock");

    public IReadOnlyList<string> Registered => Volatile.Read(ref _clients);

    /// <summary>QLIST_INSERT_HEAD.</summary>
    public void Register(string client, IInterleaver? interleaver)
    {
        var before = Volatile.Read(ref _clients);
        interleaver?.Point("insert map client");
        var after = new string[before.Length + 1];
        after[0] = client;
        before.CopyTo(after, 1);
        Volatile.Write(ref _clients, after);
    }

    /// <summary>Removes the first record of this client; no-op if it already fired.</summary>
    public bool Unregister(string client, IInterleaver? interleaver)
    {
        var before = Volatile.Read(ref _clients);
        int i = Array.IndexOf(before, client);
        if (i < 0) return false;
        interleaver?.Point("remove map client");
        Volatile.Write(ref _clients, before.Where((_, j) => j != i).ToArray());
        return true;
    }

    /// <summary>Takes every record, head first, for scheduling.</summary>
    public string[] TakeAll(IInterleaver? interleaver)
    {
        var all = Volatile.Read(ref _clients);
        if (all.Length == 0) return all;
        interleaver?.Point("empty map client list");
        Volatile.Write(ref _clients, Array.Empty<string>());
        return all;
    }
}
