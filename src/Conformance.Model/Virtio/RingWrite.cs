namespace Conformance.Model.Virtio;

/// <summary>A write the device made to the used ring, in order: an element at a slot, the index, flags or avail_event.</summary>
public readonly record struct RingWrite(string What, int Slot, ulong Value);
