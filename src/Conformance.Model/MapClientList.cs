namespace Conformance.Model;

/// <summary>
/// Map clients waiting for bounce space (softmmu/physmem.c: map_client_list,
/// cpu_register_map_client / cpu_unregister_map_client / cpu_notify_map_clients_locked). A client is a
/// bottom half: notifying schedules it and removes its record, so each registration fires at most once.
/// </summary>
internal sealed class MapClientList
{
    private readonly List<string> _clients = new();

    public IReadOnlyList<string> Registered => _clients;

    /// <summary>QLIST_INSERT_HEAD.</summary>
    public void Register(string client) => _clients.Insert(0, client);

    /// <summary>Removes the first record of this client; no-op if it already fired.</summary>
    public bool Unregister(string client)
    {
        int i = _clients.IndexOf(client);
        if (i < 0) return false;
        _clients.RemoveAt(i);
        return true;
    }

    /// <summary>Takes every record, head first, for scheduling.</summary>
    public List<string> TakeAll()
    {
        var all = new List<string>(_clients);
        _clients.Clear();
        return all;
    }
}
