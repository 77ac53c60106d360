using System.Globalization;

namespace Conformance.Qemu;

/// <summary>
/// The qtest protocol (one command per line, replies "OK ..." or "FAIL ..."; asynchronous "IRQ ..." lines
/// are skipped): memory and port accesses as a guest CPU would make them.
/// </summary>
public sealed class QtestClient(LineChannel channel) : Conformance.Model.Virtio.IGuestMemory
{
    private string Command(string line)
    {
        channel.Send(line);
        for (; ; )
        {
            var reply = channel.ReadLine();
            if (reply.StartsWith("IRQ", StringComparison.Ordinal)) continue;
            if (reply.StartsWith("OK", StringComparison.Ordinal)) return reply.Length > 2 ? reply[3..] : "";
            throw new QemuException($"qtest '{line}' answered '{reply}'");
        }
    }

    private static ulong Hex(string s) => ulong.Parse(s.StartsWith("0x") ? s[2..] : s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    public byte InB(ushort port) => (byte)Hex(Command($"inb 0x{port:x}"));
    public ushort InW(ushort port) => (ushort)Hex(Command($"inw 0x{port:x}"));
    public uint InL(ushort port) => (uint)Hex(Command($"inl 0x{port:x}"));
    public void OutB(ushort port, byte v) => Command($"outb 0x{port:x} 0x{v:x}");
    public void OutW(ushort port, ushort v) => Command($"outw 0x{port:x} 0x{v:x}");
    public void OutL(ushort port, uint v) => Command($"outl 0x{port:x} 0x{v:x}");

    // Sized memory accesses (one access of exactly this width, as a CPU's load or store would be): the
    // modern virtio-pci registers are MMIO and care about access sizes.
    public byte ReadB(ulong addr) => (byte)Hex(Command($"readb 0x{addr:x}"));
    public ushort ReadW(ulong addr) => (ushort)Hex(Command($"readw 0x{addr:x}"));
    public uint ReadL(ulong addr) => (uint)Hex(Command($"readl 0x{addr:x}"));
    public void WriteB(ulong addr, byte v) => Command($"writeb 0x{addr:x} 0x{v:x}");
    public void WriteW(ulong addr, ushort v) => Command($"writew 0x{addr:x} 0x{v:x}");
    public void WriteL(ulong addr, uint v) => Command($"writel 0x{addr:x} 0x{v:x}");

    /// <summary>qtest's memset: fills guest memory without sending the bytes.</summary>
    public void Memset(ulong addr, int len, byte value)
    {
        if (len > 0) Command($"memset 0x{addr:x} 0x{len:x} 0x{value:x}");
    }

    public byte[] Read(ulong addr, int len)
    {
        if (len == 0) return Array.Empty<byte>();
        var hex = Command($"read 0x{addr:x} 0x{len:x}");
        return Convert.FromHexString(hex.StartsWith("0x") ? hex[2..] : hex);
    }

    public void Write(ulong addr, ReadOnlySpan<byte> data)
    {
        if (data.Length == 0) return;
        Command($"write 0x{addr:x} 0x{data.Length:x} 0x{Convert.ToHexString(data)}");
    }

    /// <summary>Guest memory for the suite's ring driver (SplitRingDriver).</summary>
    public void Read(ulong addr, Span<byte> destination) => Read(addr, destination.Length).CopyTo(destination);
}
