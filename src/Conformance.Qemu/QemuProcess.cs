using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;

namespace Conformance.Qemu;

/// <summary>
/// One QEMU process driven over qtest (QEMU connects out to our listening socket) and QMP, with its stderr
/// captured. q35, -S, 64 MiB, pc-testdev and a legacy virtio-blk-pci at 00:04.0 over a raw disk image
/// (docs/qemu-rules.md, "Driving QEMU over qtest", QT-1). Disposal quits or kills it; every process still alive at exit is killed.
/// </summary>
public sealed class QemuProcess : IDisposable
{
    private static readonly ConcurrentDictionary<int, Process> Live = new();
    private readonly Process _process;
    private readonly string _dir;
    private readonly string _diskPath;
    private readonly System.Text.StringBuilder _stderr = new();

    static QemuProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var p in Live.Values)
                try { p.Kill(true); } catch (InvalidOperationException) { }
        };
    }

    public QemuProcess(QemuBinary binary, byte[] disk, TimeSpan? timeout = null, VirtioTransport transport = VirtioTransport.Legacy,
        ulong? maxBounceBufferSize = null)
    {
        Binary = binary;
        Transport = transport;
        MaxBounceBufferSize = maxBounceBufferSize;
        _dir = WorkDirectory();
        string qtestPath = Path.Combine(_dir, "qtest.sock"), qmpPath = Path.Combine(_dir, "qmp.sock"), diskPath = Path.Combine(_dir, "disk.img");
        _diskPath = diskPath;
        File.WriteAllBytes(diskPath, disk);
        MarkDiskUntouched();
        var t = timeout ?? TimeSpan.FromSeconds(20);

        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(qtestPath));
        listener.Listen(1);

        var psi = new ProcessStartInfo(binary.Path)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
                 {
                     "-M", "q35", "-S", "-display", "none", "-nodefaults", "-m", "64M",
                     "-qtest", $"unix:{qtestPath}", "-qtest-log", "none",
                     "-qmp", $"unix:{qmpPath},server=on,wait=off",
                     "-device", "pc-testdev",
                     "-drive", $"if=none,id=d0,file={diskPath},format=raw",
                     "-device", DeviceArguments(binary, transport, maxBounceBufferSize),
                 })
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi) ?? throw new QemuException($"could not start {binary.Path}");
        Live[_process.Id] = _process;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stderr)
            {
                _stderr.AppendLine(e.Data);
                Monitor.PulseAll(_stderr);
            }
        };
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        try
        {
            var accept = listener.AcceptAsync();
            // a QEMU that exits at once (a refused option, a missing firmware) is reported at once
            var waited = Stopwatch.StartNew();
            while (!accept.Wait(TimeSpan.FromMilliseconds(50)))
            {
                if (_process.HasExited)
                {
                    _process.WaitForExit();   // the stderr reader has delivered everything
                    throw new QemuException($"QEMU exited with status {_process.ExitCode} before connecting to the qtest socket", StderrTail());
                }
                if (waited.Elapsed > t) throw new QemuException("QEMU did not connect to the qtest socket", StderrTail());
            }
            Qtest = new QtestClient(new LineChannel(accept.Result, StderrTail, t));
            var qmpSocket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            var deadline = DateTime.UtcNow + t;
            while (true)
            {
                try
                {
                    qmpSocket.Connect(new UnixDomainSocketEndPoint(qmpPath));
                    break;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline && !_process.HasExited)
                {
                    Thread.Sleep(20);
                }
            }
            Qmp = new QmpClient(new LineChannel(qmpSocket, StderrTail, t));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// The virtio-blk-pci device: legacy or modern transport; and, where x-query-virtio-status aborts the
    /// binary and the legacy transport has to be probed for `broken`, ioeventfd off, so that a kick is
    /// handled before the port write returns (<see cref="VirtioBlkDriver.Broken"/>).
    /// A virtio device DMAs through address_space_memory unless it has VIRTIO_F_ACCESS_PLATFORM
    /// (hw/virtio/virtio-bus.c:virtio_bus_device_plugged), and only its PCI bus-master address space takes
    /// x-max-bounce-buffer-size (hw/pci/pci.c:do_pci_register_device): so a bounce budget needs the modern
    /// transport with iommu_platform=on, and the driver then accepts ACCESS_PLATFORM.
    /// </summary>
    public static string DeviceArguments(QemuBinary binary, VirtioTransport transport, ulong? maxBounceBufferSize)
    {
        var args = "virtio-blk-pci,drive=d0,addr=0x4,vectors=0,id=blk0," + (transport == VirtioTransport.Legacy
            ? "disable-modern=on,disable-legacy=off"
            : "disable-modern=off,disable-legacy=on");
        if (maxBounceBufferSize is { } budget)
        {
            if (!binary.DeviceHasProperty("virtio-blk-pci", "x-max-bounce-buffer-size"))
                throw new QemuException($"QEMU {binary.Version} has no x-max-bounce-buffer-size (added in 9.1): its bounce budget cannot be set");
            if (transport == VirtioTransport.Legacy)
                throw new QemuException("a bounce budget needs the modern transport (iommu_platform=on: legacy devices cannot offer ACCESS_PLATFORM)");
            args += $",iommu_platform=on,x-max-bounce-buffer-size={budget}";
        }
        if (transport == VirtioTransport.Legacy && binary.StatusQueryAborts) args += ",ioeventfd=off";
        return args;
    }

    public ulong? MaxBounceBufferSize { get; }

    public QemuBinary Binary { get; }
    public VirtioTransport Transport { get; }

    /// <summary>A fresh directory for the sockets and the disk image: in /dev/shm where there is one, so that
    /// the guest's FLUSH requests (fdatasync) and the image restores between cases cost no disk I/O.</summary>
    private static string WorkDirectory()
    {
        const string shm = "/dev/shm";
        if (Directory.Exists(shm))
        {
            try
            {
                return Directory.CreateDirectory(Path.Combine(shm, "conformance-qemu-" + Guid.NewGuid().ToString("N")[..12])).FullName;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return Directory.CreateTempSubdirectory("conformance-qemu-").FullName;
    }
    public QtestClient Qtest { get; } = null!;
    public QmpClient Qmp { get; } = null!;
    public bool HasExited => _process.HasExited;

    public int Pid => _process.Id;

    /// <summary>Whether a process with this id is still running (and not a zombie).</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// Rewrites the raw disk image in place while QEMU runs. QEMU opens it without O_DIRECT and a raw image
    /// has no format-level cache, so the next read goes through the host page cache and sees these bytes;
    /// call it only when no request is in flight (after a device reset, which drains them).
    /// </summary>
    public void RestoreDisk(byte[] disk)
    {
        using (var f = new FileStream(_diskPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            f.Write(disk);
            f.Flush();   // to the page cache QEMU reads through; no fsync needed
        }
        MarkDiskUntouched();
    }

    /// <summary>A modification time no write of QEMU's can give the image: any write QEMU makes (an OUT request,
    /// whatever its bytes) sets the file's time to now, so <see cref="DiskWritten"/> tells whether the image
    /// needs reading back and restoring without reading its megabyte.</summary>
    private static readonly DateTime Untouched = new(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    private void MarkDiskUntouched() => File.SetLastWriteTimeUtc(_diskPath, Untouched);

    /// <summary>Whether QEMU has written the disk image since it was created or last restored.</summary>
    public bool DiskWritten => File.GetLastWriteTimeUtc(_diskPath) != Untouched;

    /// <summary>The raw disk image as QEMU left it (read through the page cache QEMU writes through).</summary>
    public byte[] ReadDisk() => File.ReadAllBytes(_diskPath);

    /// <summary>The last lines QEMU printed on stderr (error reports such as "virtio: bogus descriptor ...").</summary>
    public string StderrTail()
    {
        lock (_stderr)
        {
            var lines = _stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return string.Join("\n", lines.TakeLast(20));
        }
    }

    /// <summary>Waits until stderr from position <paramref name="from"/> on contains <paramref name="text"/>
    /// (QEMU's error lines arrive asynchronously); false if it did not within <paramref name="timeout"/>.</summary>
    public bool WaitForStderr(int from, string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_stderr)
        {
            for (; ; )
            {
                if (_stderr.Length > from && _stderr.ToString(from, _stderr.Length - from).Contains(text, StringComparison.Ordinal)) return true;
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return false;
                Monitor.Wait(_stderr, left);
            }
        }
    }

    /// <summary>Everything QEMU printed on stderr so far.</summary>
    public string Stderr()
    {
        lock (_stderr) return _stderr.ToString();
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                try { Qmp?.Execute("quit"); } catch (QemuException) { } catch (IOException) { }
                if (!_process.WaitForExit(2000)) _process.Kill(true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException) { }
        Live.TryRemove(_process.Id, out _);
        _process.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
