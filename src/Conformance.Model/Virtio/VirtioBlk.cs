using System.Buffers.Binary;
using System.Text;

namespace Conformance.Model.Virtio;

/// <summary>
/// A reference virtio-blk device over a byte-array disk (hw/block/virtio-blk.c, QEMU 7.2), following
/// QEMU's request flow: a kick pops every available request (virtio_blk_handle_vq); GET_ID, unsupported
/// types and out-of-range requests complete at once; reads, writes and flushes complete later, when the
/// block layer finishes (<see cref="CompleteIo"/>), in submission order. A completion writes the status
/// byte through the last in-buffer and pushes the element with the total in length.
/// </summary>
public sealed class VirtioBlk
{
    public const uint TypeIn = 0, TypeOut = 1, TypeFlush = 4, TypeGetId = 8, TypeBarrier = 0x80000000;
    public const byte StatusOk = 0, StatusIoErr = 1, StatusUnsupp = 2, StatusZoneInvalidCmd = 3;

    /// <summary>VIRTIO_BLK_T_ZONE_REPORT.</summary>
    public const uint TypeZoneReport = 16;

    /// <summary>What a zone report's in buffer must hold in QEMU 8.0 and later: the status byte, the report
    /// header (64 bytes) and one zone descriptor (64 bytes).</summary>
    public const ulong ZoneReportMinimumIn = 1 + 64 + 64;
    public const int SectorSize = 512;

    private readonly List<Request> _inFlight = new();

    private sealed record Request(VirtQueueElement Element, uint Type, ulong Sector, ulong InLen);

    public VirtioBlk(VirtioDevice device, byte[] disk, string serial = "")
    {
        Device = device;
        Disk = disk;
        Serial = serial;
    }

    public VirtioDevice Device { get; }
    public byte[] Disk { get; }
    public string Serial { get; }

    /// <summary>Requests submitted to the block layer and not completed yet (their buffers stay mapped).</summary>
    public int InFlight => _inFlight.Count;

    private VirtQueue Queue => Device.Queues[0];

    /// <summary>virtio_blk_handle_vq: pop and handle until the queue is empty or the device breaks.</summary>
    public void Kick()
    {
        // virtio.c:virtio_queue_notify ignores a kick on a broken device or a queue without a descriptor table;
        // a queue whose available ring is at 0 still runs the handler (its pops find it empty, but
        // set_notification writes the used ring)
        if (Device.Disabled || Queue.DescAddr == 0) return;
        bool suppress = Queue.Notification;
        do
        {
            if (suppress) Device.SetNotification(Queue, false);
            for (; ; )
            {
                var popped = Device.Pop(Queue);
                if (popped.Element is null) break;
                if (!HandleRequest(popped.Element))
                {
                    Device.Detach(Queue, popped.Element, 0);
                    // Stryker disable once Statement : equivalent, a fatal parse error broke the device (virtio_error), so the next pop returns nothing and the loop ends there
                    break;
                }
            }
            if (suppress && (Device.Faults & VirtioFault.KicksLeftSuppressed) == 0) Device.SetNotification(Queue, true);
        } while (!Device.QueueEmpty(Queue));
    }

    /// <summary>virtio_blk_handle_request; false for a fatal parse error (virtio_error, element detached).</summary>
    private bool HandleRequest(VirtQueueElement elem)
    {
        if (elem.Out.Count < 1 || elem.In.Count < 1)
        {
            Device.VirtioError("virtio-blk missing headers");
            return false;
        }
        var header = new byte[16];
        if (CopyFrom(elem.Out, 0, header) != 16)
        {
            Device.VirtioError("virtio-blk request outhdr too short");
            return false;
        }
        ulong inLen = elem.InBytes;   // "we always touch the last byte"
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(header);
        ulong sector = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8));
        switch (type & ~(TypeOut | TypeBarrier))
        {
            case TypeIn:
                {
                    bool isWrite = (type & TypeOut) != 0;
                    ulong size = isWrite ? elem.OutBytes - 16 : inLen - 1;
                    if (!SectorRangeOk(sector, size))
                    {
                        Complete(elem, inLen, StatusIoErr);
                        return true;
                    }
                    _inFlight.Add(new Request(elem, isWrite ? TypeOut : TypeIn, sector, inLen));
                    return true;
                }
            case TypeFlush:
                _inFlight.Add(new Request(elem, TypeFlush, 0, inLen));
                return true;
            case TypeGetId:
                {
                    var serial = Encoding.ASCII.GetBytes(Serial + "\0");
                    // Stryker disable once Arithmetic : equivalent, a size past the buffer is cut by CopyTo's limit of inLen - 1 bytes
                    int size = (int)Math.Min((ulong)serial.Length, Math.Min(inLen - 1, 20));
                    // Stryker disable once Arithmetic : equivalent, size is at most inLen - 1, so a larger limit changes nothing
                    CopyTo(elem.In, 0, serial.AsSpan(0, size), inLen - 1);
                    Complete(elem, inLen, StatusOk);
                    return true;
                }
            case TypeZoneReport when Device.Memory.Profile == Profile.Qemu92 && inLen < ZoneReportMinimumIn:
                // docs/qemu-rules.md, VBLK-4 (hw/block/virtio-blk.c:virtio_blk_handle_zone_report, QEMU 9.0+): the
                // in-buffer size is checked before VIRTIO_BLK_F_ZONED, so a short one breaks the device even
                // where zones are not offered; the request is still completed with ZONE_INVALID_CMD, which
                // writes the status byte but publishes nothing (finding F-BLK-3)
                Device.VirtioError("in buffer too small for zone report");
                Complete(elem, inLen, StatusZoneInvalidCmd);
                return true;
            case 2 or 10 or 12:   // SCSI_CMD, DISCARD & ~OUT, WRITE_ZEROES & ~OUT
                throw new NotSupportedException($"virtio-blk request type {type} (SCSI, DISCARD, WRITE_ZEROES) is not modelled");
            default:
                Complete(elem, inLen, StatusUnsupp);
                return true;
        }
    }

    /// <summary>virtio_blk_sect_range_ok with 512-byte logical blocks.</summary>
    private bool SectorRangeOk(ulong sector, ulong size)
    {
        ulong sectors = size / SectorSize;
        ulong total = (ulong)Disk.Length / SectorSize;
        if (sectors > (1UL << 31) / SectorSize) return false;   // BDRV_REQUEST_MAX_SECTORS
        if (size % SectorSize != 0) return false;
        return sector <= total && sectors <= total - sector;
    }

    /// <summary>virtio_reset of a virtio-blk device (docs/qemu-rules.md, R5; hw/block/virtio-blk.c:virtio_blk_reset):
    /// the block layer is drained first, so requests in flight complete (pushed, unmapped) before the queues
    /// are reset; then the device forgets everything else.</summary>
    public void Reset()
    {
        CompleteIo();
        Device.Reset();
    }

    /// <summary>The block layer finishes every submitted request, in order (virtio_blk_rw_complete / flush_complete).</summary>
    public void CompleteIo()
    {
        var requests = _inFlight.ToList();
        _inFlight.Clear();
        foreach (var r in requests)
        {
            if (r.Type == TypeIn)
            {
                var data = Disk.AsSpan((int)(r.Sector * SectorSize), (int)(r.InLen - 1)).ToArray();
                // Stryker disable once Arithmetic : equivalent, the data is exactly InLen - 1 bytes, so a larger limit changes nothing
                CopyTo(r.Element.In, 0, data, r.InLen - 1);
            }
            else if (r.Type == TypeOut)
            {
                var data = new byte[r.Element.OutBytes - 16];
                CopyFrom(r.Element.Out, 16, data);
                data.CopyTo(Disk.AsSpan((int)(r.Sector * SectorSize)));
            }
            Complete(r.Element, r.InLen, StatusOk);
        }
    }

    /// <summary>virtio_blk_req_complete: status into the last in byte, push with in_len, notify.</summary>
    private void Complete(VirtQueueElement elem, ulong inLen, byte status)
    {
        var last = elem.In[^1];
        Device.Memory.WriteMapped(last.Mapping, last.Length - 1, new[] { status });
        Device.Push(Queue, elem, (uint)inLen);
        Device.Notify(Queue);
    }

    /// <summary>iov_to_buf: bytes from the sg list starting at <paramref name="offset"/>; returns how many.</summary>
    private int CopyFrom(IReadOnlyList<SgEntry> sg, ulong offset, Span<byte> destination)
    {
        int done = 0;
        foreach (var e in sg)
        {
            // Stryker disable once Statement : equivalent, the remaining pieces would each copy 0 bytes
            if (done == destination.Length) break;
            // Stryker disable once Equality : equivalent, a piece the offset ends exactly at copies 0 bytes and resets the offset too
            if (offset >= e.Length)
            {
                offset -= e.Length;
                continue;
            }
            int n = (int)Math.Min(e.Length - offset, (ulong)(destination.Length - done));
            Device.Memory.ReadMapped(e.Mapping, offset, destination.Slice(done, n));
            done += n;
            offset = 0;
        }
        return done;
    }

    /// <summary>iov_from_buf into the first <paramref name="limit"/> bytes of the sg list.</summary>
    private void CopyTo(IReadOnlyList<SgEntry> sg, ulong offset, ReadOnlySpan<byte> source, ulong limit)
    {
        int done = 0;
        ulong position = 0;
        foreach (var e in sg)
        {
            // Stryker disable once Statement : equivalent, the remaining pieces would each copy 0 bytes
            if (done == source.Length) break;
            ulong start = Math.Max(offset, position);
            ulong end = Math.Min(position + e.Length, limit);
            // Stryker disable once Equality : equivalent, start == end copies 0 bytes
            if (start < end)
            {
                int n = (int)Math.Min(end - start, (ulong)(source.Length - done));
                Device.Memory.WriteMapped(e.Mapping, start - position, source.Slice(done, n));
                done += n;
            }
            position += e.Length;
        }
    }
}
