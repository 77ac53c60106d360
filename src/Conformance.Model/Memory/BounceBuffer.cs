namespace Conformance.Model;

/// <summary>
/// The bytes of a bounce mapping, with their provenance: whether each byte was produced by the caller
/// (written through the mapping), filled from the device at map time, or never produced at all.
/// Qemu72 allocates with qemu_memalign and never initialises a write buffer; Qemu92 uses g_malloc0.
/// </summary>
public sealed class BounceBuffer
{
    public BounceBuffer(int length, bool zeroFilled)
    {
        Data = new byte[length];
        Produced = new ByteOrigin[length];
        Array.Fill(Produced, zeroFilled ? ByteOrigin.ZeroFill : ByteOrigin.NeverProduced);
    }

    public byte[] Data { get; }
    public ByteOrigin[] Produced { get; }
}

public enum ByteOrigin : byte
{
    /// <summary>Uninitialised heap memory (Qemu72 write mapping): the model keeps zeros but marks them.</summary>
    NeverProduced,
    /// <summary>Zero-filled by QEMU (Qemu92 write mapping): defined, but not the caller's and not the device's.</summary>
    ZeroFill,
    /// <summary>Read from the device at map time.</summary>
    Device,
    /// <summary>Written by the caller through the mapping.</summary>
    Caller,
}
