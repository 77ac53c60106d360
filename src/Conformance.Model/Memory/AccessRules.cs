namespace Conformance.Model;

/// <summary>
/// The access-size fields of a MemoryRegionOps: valid.max_access_size (what callers may issue),
/// impl.min/max_access_size (what the callbacks implement) and impl.unaligned. Zero means QEMU's
/// default (valid max 4, impl 1..4), as in softmmu/physmem.c:memory_access_size and
/// softmmu/memory.c:access_with_adjusted_size.
/// </summary>
public sealed record AccessRules(uint ValidMaxAccessSize = 0, uint ImplMinAccessSize = 0, uint ImplMaxAccessSize = 0, bool ImplUnaligned = false)
{
    public static readonly AccessRules Default = new();

    /// <summary>ram_device_mem_ops: 1..8 bytes, unaligned allowed (softmmu/memory.c).</summary>
    public static readonly AccessRules RamDevice = new(8, 1, 8, true);

    public uint EffectiveValidMax => ValidMaxAccessSize == 0 ? 4u : ValidMaxAccessSize;
    public uint EffectiveImplMin => ImplMinAccessSize == 0 ? 1u : ImplMinAccessSize;
    public uint EffectiveImplMax => ImplMaxAccessSize == 0 ? 4u : ImplMaxAccessSize;
}
