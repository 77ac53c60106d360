namespace Conformance.Model.Virtio;

/// <summary>One scatter-gather piece of an element: the mapping, the guest address it came from, its length.</summary>
public sealed record SgEntry(Mapping Mapping, ulong Addr, ulong Length);

/// <summary>
/// A popped chain (include/hw/virtio/virtio.h: VirtQueueElement): the head index, the device-readable
/// pieces (out) and the device-writable pieces (in), each a live mapping until the element is released.
/// </summary>
public sealed class VirtQueueElement
{
    internal VirtQueueElement(int id, uint head, IReadOnlyList<SgEntry> outSg, IReadOnlyList<SgEntry> inSg)
    {
        Id = id;
        Head = head;
        Out = outSg;
        In = inSg;
    }

    /// <summary>Model-side identity (pop order), for traces.</summary>
    public int Id { get; }

    /// <summary>elem->index: the head descriptor.</summary>
    public uint Head { get; }

    public IReadOnlyList<SgEntry> Out { get; }
    public IReadOnlyList<SgEntry> In { get; }

    public ulong InBytes => (ulong)In.Sum(e => (decimal)e.Length);
    public ulong OutBytes => (ulong)Out.Sum(e => (decimal)e.Length);

    /// <summary>Set once the element was filled, detached or unpopped: its mappings are gone.</summary>
    public bool Released { get; internal set; }
}

/// <summary>What virtqueue_pop did: an element, nothing (empty, or the device is broken), or a virtio_error.</summary>
public readonly record struct PopResult(VirtQueueElement? Element, string? Error)
{
    public static readonly PopResult Empty = new(null, null);
}
