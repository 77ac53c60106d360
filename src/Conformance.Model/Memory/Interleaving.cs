namespace Conformance.Model;

/// <summary>
/// The places in the model where QEMU lets another thread run in between: every read or write of state
/// shared across threads (the bounce in-use flag or byte budget, the map-client list, reference counts).
/// A <see cref="MemorySystem"/> with no interleaver runs free on real threads; a test harness can install
/// one that decides, at every point, which thread runs next, so an interleaving is chosen by a seed and
/// replayed exactly.
/// </summary>
public interface IInterleaver
{
    /// <summary>The calling thread is about to touch shared state; another thread may run first.</summary>
    void Point(string what);

    /// <summary>The calling thread cannot make progress until another thread acts (it waits for a lock
    /// or a wake-up); a harness uses this to tell a deadlock from a slow thread.</summary>
    void Blocked(string what);
}
