/// The sparse byte storage behind RAM blocks and device registers.
module Conformance.Properties.Tests.ByteStoreTests

open System
open Xunit
open Conformance.Model

[<Fact>]
let ``a register access that straddles a storage page sees the same bytes as byte-wise access`` () =
    let store = ByteStore(UInt128(0UL, 0x10000UL), 7u)
    let expected = Array.zeroCreate<byte> 8
    store.Read(0xffcUL, System.Span expected)
    let value = store.ReadLittleEndian(0xffcUL, 8u)
    Assert.Equal(System.BitConverter.ToUInt64(expected, 0), value)
    store.WriteLittleEndian(0x1ffeUL, 4u, 0x11223344UL)
    let bytes = Array.zeroCreate<byte> 4
    store.Read(0x1ffeUL, System.Span bytes)
    Assert.Equal<byte[]>([| 0x44uy; 0x33uy; 0x22uy; 0x11uy |], bytes)
    Assert.Equal(0x11223344UL, store.ReadLittleEndian(0x1ffeUL, 4u))

[<Fact>]
let ``modified pages are reported in address order, each once, with their offset and contents`` () =
    let store = ByteStore(UInt128(0UL, 0x10000UL), 3u)
    // touched but unchanged: not reported
    store.Read(0x5000UL, System.Span(Array.zeroCreate<byte> 16))
    store.Write(0x3001UL, System.ReadOnlySpan [| ByteStore.Pattern(3u, 0x3001UL) ^^^ 0xffuy |])
    store.Write(0x1fffUL, System.ReadOnlySpan [| ByteStore.Pattern(3u, 0x1fffUL) ^^^ 1uy |])
    let pages = store.ModifiedPages() |> List.ofSeq
    Assert.Equal<uint64 list>([ 0x1000UL; 0x3000UL ], pages |> List.map (fun kv -> kv.Key))
    Assert.Equal(ByteStore.Pattern(3u, 0x1fffUL) ^^^ 1uy, pages.[0].Value.[0xfff])
    Assert.Equal(4096, pages.[1].Value.Length)

/// A write to part of a page never touched before changes only the bytes written: the rest of the page keeps
/// its initial pattern. A write of the whole page leaves nothing of it.
[<Fact>]
let ``a write to part of an untouched page keeps the page's other initial bytes`` () =
    let store = ByteStore(UInt128(0UL, 0x10000UL), 5u)
    store.Write(0x2100UL, System.ReadOnlySpan [| 0xaauy; 0xbbuy |])
    let page = Array.zeroCreate<byte> 4096
    store.Read(0x2000UL, System.Span page)

    let expected = Array.init 4096 (fun i -> ByteStore.Pattern(5u, 0x2000UL + uint64 i))

    expected.[0x100] <- 0xaauy
    expected.[0x101] <- 0xbbuy
    Assert.Equal<byte[]>(expected, page)
    let whole = Array.init 4096 (fun i -> byte (i % 253))
    store.Write(0x4000UL, System.ReadOnlySpan whole)
    store.Read(0x4000UL, System.Span page)
    Assert.Equal<byte[]>(whole, page)

/// Seed 0 is zero-filled memory, what QEMU's RAM holds when it is allocated (qemu_ram_alloc: anonymous
/// memory reads as zeros) and most device registers at reset.
[<Fact>]
let ``a store of seed 0 reads as zeros before anything is written`` () =
    let store = ByteStore(UInt128(0UL, 0x10000UL), 0u)
    let page = Array.create<byte> 4096 0xffuy
    store.Read(0x3000UL, Span page)
    Assert.Equal<byte[]>(Array.zeroCreate 4096, page)
    Assert.Equal(0UL, store.ReadLittleEndian(0x5ff8UL, 8u))
    Assert.Empty(store.ModifiedPages())

/// The initial pattern is the model's own, but what it is for is an invariant of the model: untouched bytes are
/// recognisable, so a transfer that reads or writes the wrong offset, or the wrong region, shows in the
/// bytes compared. Neighbouring bytes of one store differ, and so do the same offsets of two seeds.
[<Fact>]
let ``the initial pattern tells offsets and seeds apart`` () =
    let pageOf seed at =
        let page = Array.zeroCreate<byte> 4096
        ByteStore(UInt128(0UL, 0x100000UL), seed).Read(at, Span page)
        page

    for seed, at in [ 1u, 0UL; 5u, 0x3000UL; 0xdeadbeefu, 0xff000UL ] do
        let page = pageOf seed at
        let distinct = page |> Array.distinct |> Array.length
        Assert.True(distinct >= 200, sprintf "seed %d at 0x%x: only %d distinct byte values in a page" seed at distinct)
        let repeats = Seq.pairwise page |> Seq.filter (fun (a, b) -> a = b) |> Seq.length
        Assert.True(repeats < 64, sprintf "seed %d at 0x%x: %d neighbours equal" seed at repeats)

    let one = pageOf 1u 0x2000UL
    let two = pageOf 2u 0x2000UL
    let same = Array.zip one two |> Array.filter (fun (a, b) -> a = b) |> Array.length
    Assert.True(same < 64, sprintf "seeds 1 and 2 agree on %d of 4096 bytes" same)
