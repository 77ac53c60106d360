using System.Net.Sockets;
using System.Text;

namespace Conformance.Qemu;

/// <summary>A line-oriented connection over a unix socket with a read timeout, shared by qtest and QMP.</summary>
public sealed class LineChannel : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[65536];
    private readonly StringBuilder _pending = new();
    private readonly Func<string> _stderr;

    public LineChannel(Socket socket, Func<string> stderrTail, TimeSpan timeout)
    {
        _socket = socket;
        _stderr = stderrTail;
        Timeout = timeout;
    }

    public TimeSpan Timeout { get; }

    public void Send(string line)
    {
        var bytes = Encoding.ASCII.GetBytes(line + "\n");
        try
        {
            _socket.Send(bytes);
        }
        catch (SocketException e)
        {
            throw new QemuException($"QEMU closed the connection ({e.SocketErrorCode}) while sending '{Shorten(line)}'", _stderr());
        }
    }

    public string ReadLine()
    {
        var deadline = DateTime.UtcNow + Timeout;
        for (; ; )
        {
            var text = _pending.ToString();
            int nl = text.IndexOf('\n');
            if (nl >= 0)
            {
                _pending.Remove(0, nl + 1);
                return text[..nl].TrimEnd('\r');
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !_socket.Poll((int)Math.Min(left.TotalMicroseconds, int.MaxValue), SelectMode.SelectRead))
                throw new QemuException($"QEMU did not answer within {Timeout.TotalSeconds:0.#} s (hung?)", _stderr());
            int n = _socket.Receive(_buffer);
            if (n == 0) throw new QemuException("QEMU closed the connection (crashed or exited)", _stderr());
            _pending.Append(Encoding.ASCII.GetString(_buffer, 0, n));
        }
    }

    private static string Shorten(string s) => s.Length > 80 ? s[..80] + "..." : s;

    public void Dispose() => _socket.Dispose();
}
