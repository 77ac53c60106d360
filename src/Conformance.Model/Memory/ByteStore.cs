namespace Conformance.Model;

/// <summary>
/// Backing bytes of a RAMBlock or of a device's registers. Sparse by page so that a layout may declare
/// gigabytes (or a 2^64-byte MMIO window) without allocating them; a page is materialised on first touch
/// with a deterministic pattern derived from <see cref="Seed"/>, so untouched memory still has
/// recognisable, reproducible contents.
/// </summary>
public sealed class ByteStore
{
    private const int PageBits = 12;
    private const ulong PageSize = 1UL << PageBits;
    // Concurrent: devices on several threads touch memory at once (their bytes are their own business, as
    // in QEMU, but materialising a page must not corrupt the page table). Created on first touch: most
    // regions of a generated layout are never touched, and a case builds a fresh memory system.
    private System.Collections.Concurrent.ConcurrentDictionary<ulong, StoredPage>? _pagesOrNull;

    private System.Collections.Concurrent.ConcurrentDictionary<ulong, StoredPage> Pages
    {
        get
        {
            if (_pagesOrNull is { } pages) return pages;
            var fresh = new System.Collections.Concurrent.ConcurrentDictionary<ulong, StoredPage>();
            return Interlocked.CompareExchange(ref _pagesOrNull, fresh, null) ?? fresh;   // a racing thread's table may win
        }
    }

    /// <summary>A materialised page with its index, allocated once, so the last-page cache can point at it.</summary>
    private sealed record StoredPage(ulong Index, byte[] Bytes);

    public ByteStore(UInt128 size, uint seed)
    {
        Size = size;
        Seed = seed;
    }

    public UInt128 Size { get; }
    public uint Seed { get; }

    /// <summary>The initial value of the byte at <paramref name="offset"/>; seed 0 means zero-filled memory
    /// (what QEMU's RAM and most device registers hold at reset).</summary>
    public static byte Pattern(uint seed, ulong offset)
    {
        if (seed == 0) return 0;
        ulong x = offset * 0x9E3779B97F4A7C15UL ^ seed * 0xC2B2AE3D27D4EB4FUL;
        x ^= x >> 29;
        return (byte)(x ^ (x >> 8));
    }

    /// <summary>The page touched last: device registers are accessed a few bytes at a time, 1,024 times for a
    /// 4 KiB write-back, nearly always in the same page. One reference, so a racing thread sees either page.</summary>
    private StoredPage? _last;

    private byte[] Page(ulong pageIndex, bool wholePageOverwritten = false)
    {
        var last = _last;
        if (last is not null && last.Index == pageIndex) return last.Bytes;
        var page = Materialise(pageIndex, wholePageOverwritten);
        _last = page;
        return page.Bytes;
    }

    private StoredPage Materialise(ulong pageIndex, bool wholePageOverwritten)
    {
        var pages = Pages;
        if (pages.TryGetValue(pageIndex, out var stored)) return stored;
        var page = new byte[PageSize];
        if (Seed != 0 && !wholePageOverwritten)   // the pattern would be overwritten at once
            InitialPage(Seed, pageIndex).CopyTo(page, 0);
        return pages.GetOrAdd(pageIndex, new StoredPage(pageIndex, page));   // a racing thread's identical page may win
    }

    /// <summary>Initial pages already computed, by seed and page index. Seeds come from region names, and
    /// generated layouts reuse a few names ("ram1", "mmio2") at a few offsets, so one case after another
    /// materialises the same pages; copying one is a small fraction of computing its 4,096 bytes.
    /// Bounded: past the limit pages are computed each time.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(uint Seed, ulong Page), byte[]> InitialPages = new();
    private const int InitialPagesKept = 2048;

    private static byte[] InitialPage(uint seed, ulong pageIndex)
    {
        if (InitialPages.TryGetValue((seed, pageIndex), out var known)) return known;
        var page = new byte[PageSize];
        ulong baseOffset = pageIndex << PageBits;
        for (ulong i = 0; i < PageSize; i++) page[i] = Pattern(seed, baseOffset + i);
        if (InitialPages.Count < InitialPagesKept) InitialPages.TryAdd((seed, pageIndex), page);
        return page;
    }

    public void Read(ulong offset, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong at = offset + (ulong)done;
            int inPage = (int)(at & (PageSize - 1));
            int n = Math.Min(destination.Length - done, (int)PageSize - inPage);
            Page(at >> PageBits).AsSpan(inPage, n).CopyTo(destination.Slice(done, n));
            done += n;
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> source)
    {
        int done = 0;
        while (done < source.Length)
        {
            ulong at = offset + (ulong)done;
            int inPage = (int)(at & (PageSize - 1));
            int n = Math.Min(source.Length - done, (int)PageSize - inPage);
            source.Slice(done, n).CopyTo(Page(at >> PageBits, n == (int)PageSize).AsSpan(inPage, n));
            done += n;
        }
    }

    /// <summary>The <paramref name="size"/> (1..8) bytes at <paramref name="offset"/> as a little-endian value.</summary>
    public ulong ReadLittleEndian(ulong offset, uint size)
    {
        int inPage = (int)(offset & (PageSize - 1));
        if (inPage + (int)size > (int)PageSize)
        {
            Span<byte> bytes = stackalloc byte[8];
            bytes.Clear();
            Read(offset, bytes[..(int)size]);
            return System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        }
        var page = Page(offset >> PageBits);
        ulong value = 0;
        for (int i = (int)size - 1; i >= 0; i--) value = (value << 8) | page[inPage + i];
        return value;
    }

    /// <summary>Stores the low <paramref name="size"/> (1..8) bytes of <paramref name="value"/>, little-endian.</summary>
    public void WriteLittleEndian(ulong offset, uint size, ulong value)
    {
        int inPage = (int)(offset & (PageSize - 1));
        if (inPage + (int)size > (int)PageSize)
        {
            Span<byte> bytes = stackalloc byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
            Write(offset, bytes[..(int)size]);
            return;
        }
        var page = Page(offset >> PageBits);
        for (int i = 0; i < (int)size; i++) page[inPage + i] = (byte)(value >> (8 * i));
    }

    /// <summary>Offsets of pages whose bytes differ from the initial pattern, with the page contents (for comparisons).</summary>
    public IEnumerable<KeyValuePair<ulong, byte[]>> ModifiedPages()
    {
        if (_pagesOrNull is not { } pages) yield break;
        foreach (var (index, stored) in pages.OrderBy(p => p.Key))
        {
            ulong baseOffset = index << PageBits;
            var page = stored.Bytes;
            for (ulong i = 0; i < PageSize; i++)
            {
                if (page[i] != Pattern(Seed, baseOffset + i))
                {
                    yield return new(baseOffset, (byte[])page.Clone());
                    break;
                }
            }
        }
    }
}
