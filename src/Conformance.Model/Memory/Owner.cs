namespace Conformance.Model;

/// <summary>
/// The QOM object owning a MemoryRegion. memory_region_ref/unref (softmmu/memory.c) count on the
/// owner, so a mapping keeps the device or memory backend alive across hot-unplug (docs/qemu-rules.md, R1, R2, R3).
/// </summary>
public sealed class Owner
{
    public Owner(string name) => Name = name;

    public string Name { get; }

    /// <summary>Reference count; 1 while the object merely exists. Changed atomically, as QOM's
    /// object_ref/object_unref do (qatomic_inc / qatomic_fetch_dec), so devices on several threads may map at once.</summary>
    public int RefCount => Volatile.Read(ref Count);

    /// <summary>The count itself, for the atomic (and, in a broken variant, non-atomic) updates of MemorySystem.</summary>
    internal int Count = Baseline;

    /// <summary>The count of an owner nobody maps.</summary>
    public const int Baseline = 1;
}
