namespace Conformance.Model;

/// <summary>Dirty-memory clients (include/exec/ramlist.h: DIRTY_MEMORY_VGA/CODE/MIGRATION).</summary>
public enum DirtyClient
{
    Vga = 0,
    Code = 1,
    Migration = 2,
}
