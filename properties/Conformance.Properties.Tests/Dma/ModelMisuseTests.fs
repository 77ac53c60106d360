/// A caller that misuses the model's API (a name that does not exist, a transfer outside a mapping, an
/// access_len above the mapped length, a mapping used after its unmap) gets an exception that says what
/// was wrong, and the model's state is left as it was.
module Conformance.Properties.Tests.ModelMisuseTests

open System
open Xunit
open Conformance.Model
open Conformance.Properties.LayoutBuilding
open Conformance.Properties.Oracle

let private system () =
    let layout =
        Spec.OneSpace
            [ Spec.Region("ram", RegionKind.Ram, u128 0x10000UL)
              Spec.Region("dev", RegionKind.Io, u128 0x1000UL, 0x100000UL) ]

    MemorySystem(layout, Profile.Qemu72)

let private refCounts (s: MemorySystem) =
    s.Owners |> Seq.map (fun o -> o.Name, o.RefCount) |> List.ofSeq

[<Fact>]
let ``an unknown address space or region is named in the error`` () =
    let s = system ()
    Assert.Equal("memory", s.Space("memory").Name)
    Assert.Equal("ram", s.Region("ram").Name)
    Assert.Contains("'nowhere'", Assert.Throws<ArgumentException>(fun () -> s.Space "nowhere" |> ignore).Message)
    Assert.Contains("'nothing'", Assert.Throws<ArgumentException>(fun () -> s.Region "nothing" |> ignore).Message)

[<Theory>]
[<InlineData(0x0UL, true)>] // direct (RAM)
[<InlineData(0x100000UL, true)>] // bounce (MMIO)
[<InlineData(0x0UL, false)>]
[<InlineData(0x100000UL, false)>]
let ``reading or writing past a mapping's end is refused and changes nothing`` (addr: uint64, write: bool) =
    let s = system ()
    let m = s.Map(s.Space "memory", addr, 16UL, write).Mapping
    let before = Array.zeroCreate<byte> 16
    s.ReadMapped(m, 0UL, Span before)

    let e =
        Assert.Throws<ArgumentOutOfRangeException>(fun () -> s.WriteMapped(m, 8UL, ReadOnlySpan(Array.create 9 0xabuy)))

    Assert.Contains("outside mapping", e.Message)

    Assert.Throws<ArgumentOutOfRangeException>(fun () -> s.ReadMapped(m, 17UL, Span(Array.zeroCreate<byte> 0)))
    |> ignore

    Assert.Throws<ArgumentOutOfRangeException>(fun () -> s.ReadMapped(m, 1UL, Span(Array.zeroCreate<byte> 16)))
    |> ignore

    let after = Array.zeroCreate<byte> 16
    s.ReadMapped(m, 0UL, Span after)
    Assert.Equal<byte[]>(before, after)
    // the last byte is inside the window
    s.WriteMapped(m, 15UL, ReadOnlySpan [| 0x5auy |])
    let last = Array.zeroCreate<byte> 1
    s.ReadMapped(m, 15UL, Span last)
    Assert.Equal(0x5auy, last.[0])

[<Fact>]
let ``an access_len above the mapped length is refused and the mapping stays live (U1)`` () =
    let s = system ()
    let m = s.Map(s.Space "memory", 0x100000UL, 16UL, true).Mapping
    let held = refCounts s

    let e =
        Assert.Throws<ArgumentOutOfRangeException>(fun () -> s.Unmap(m, 17UL) |> ignore)

    Assert.Contains("exceeds mapped length 16", e.Message)
    Assert.True m.Live
    Assert.Equal<(string * int) list>(held, refCounts s)
    Assert.True s.GlobalBounceInUse
    Assert.True(s.Unmap(m, 16UL).Performed)
    Assert.False s.GlobalBounceInUse

[<Fact>]
let ``a mapping used after its unmap is refused; a second unmap does nothing`` () =
    let s = system ()
    let m = s.Map(s.Space "memory", 0x40UL, 8UL, true).Mapping
    s.Unmap(m, 8UL) |> ignore
    let counts = refCounts s
    Assert.Contains("no longer live", Assert.Throws<InvalidOperationException>(fun () -> s.ReadMapped(m, 0UL, Span(Array.zeroCreate<byte> 1))).Message)

    Assert.Throws<InvalidOperationException>(fun () -> s.WriteMapped(m, 0UL, ReadOnlySpan [| 1uy |]))
    |> ignore

    Assert.False(s.Unmap(m, 8UL).Performed)
    Assert.Equal<(string * int) list>(counts, refCounts s)

[<Theory>]
[<InlineData(0)>]
[<InlineData(3)>]
[<InlineData(2048)>]
let ``a split queue size that is not a power of two up to 1024 is refused`` (num: int) =
    let s = system ()
    let device = Virtio.VirtioDevice(s, s.Space "memory", 1, 0UL)

    let e =
        Assert.Throws<ArgumentOutOfRangeException>(fun () -> device.SetupQueue(0, num, 0x1000UL, 0x2000UL, 0x3000UL))

    Assert.Contains("powers of two", e.Message)
    Assert.False device.Queues.[0].Ready

[<Fact>]
let ``an element released twice is refused; its mappings were dropped once`` () =
    let s = system ()
    let mem = s.Space "memory"
    let device = Virtio.VirtioDevice(s, mem, 1, 0UL)
    device.SetupQueue(0, 4, 0x1000UL, 0x2000UL, 0x3000UL)
    let withRingCaches = refCounts s
    let driver = Virtio.SplitRingDriver(s, mem, 4, 0x1000UL, 0x2000UL, 0x3000UL)
    driver.ClearRings false
    driver.WriteDescriptor(0, Virtio.VringDesc(0x4000UL, 16u, Virtio.VirtioConstants.DescFlagWrite, 0us))
    driver.Publish [ 0us ]
    let vq = device.Queues.[0]
    let elem = (device.Pop vq).Element
    device.Push(vq, elem, 16u)
    Assert.Contains("already released", Assert.Throws<InvalidOperationException>(fun () -> device.Push(vq, elem, 16u)).Message)
    Assert.Equal(0, vq.InUse)
    Assert.Empty s.LiveMappings
    Assert.Equal<(string * int) list>(withRingCaches, refCounts s)
