namespace Conformance.Model;

/// <summary>
/// Which dirty clients are active (softmmu/memory.c:memory_region_get_dirty_log_mask): migration while
/// global dirty tracking runs, code while TCG is the accelerator, VGA per region (<see cref="MemoryRegion.LogVga"/>).
/// </summary>
public sealed record DirtyLogging(bool Migration = true, bool Code = true)
{
    public static readonly DirtyLogging Default = new();
}
