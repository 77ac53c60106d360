/// The model against what real QEMU 7.2 did on this machine kind (docs/qemu-rules.md, "Driving QEMU over
/// qtest", QT-4 "observations to calibrate against": legacy virtio-blk on q35 with pc-testdev, driven over qtest).
/// The layout is the committed q35 dump of that QEMU; each case is one request as QT-4 describes it.
module Conformance.Properties.Tests.QemuObservationTests

open System
open System.Buffers.Binary
open Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Properties.Tests.TestSupport

open Conformance.Properties.DifferentialCases
open Conformance.Qemu.Differential.QemuDifferential

/// One request: header (type, sector) in RAM unless given, then the chain as (addr, len, flags), then kick
/// and completion. Returns the run.
let request (typ: uint32) (sector: uint64) (headerAt: uint64) (chain: (uint64 * uint32 * uint16) list) (extra: ScenarioOp list) =
    let header = Array.zeroCreate<byte> 16
    BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(), typ)
    BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), sector)

    let entries =
        chain
        |> List.mapi (fun i (a, l, f) -> DescriptorEntry(i, a, l, f, uint16 (i + 1)))

    let ops =
        [ VirtioSetupOp("memory", 256, 0x100000UL, 0x101000UL, 0x102000UL, false, false, false, 2048, "") :> ScenarioOp
          WriteOp("memory", headerAt, header)
          yield! extra
          DescriptorsOp(Nullable(), Array.ofList entries)
          PublishOp [| 0us |]
          KickOp()
          CompleteIoOp() ]

    ScenarioRunner.Run(Scenario(Profile.Qemu72, q35.Value, Array.ofList ops))

let sectorBytes (sector: int) (n: int) =
    (VirtioContext.InitialDisk 2048).[sector * 512 .. sector * 512 + n - 1]

let readInto (addr: uint64) (len: uint32) =
    request VirtioBlk.TypeIn 1UL Header [ Header, 16u, N; addr, len, W ||| N; Status, 1u, W ] []

[<Fact>]
let ``read 512 B into RAM: used len 513, data correct`` () =
    let run = readInto Data 512u
    Assert.Equal<struct (uint32 * uint32) list>([ struct (0u, 513u) ], snd (used run))
    Assert.Equal<byte[]>(sectorBytes 1 512, read run Data 512)

[<Fact>]
let ``read 512 B into pc-testdev MMIO: used len 513, data arrives in MMIO at unmap`` () =
    let run = readInto Mmio 512u
    Assert.Equal<struct (uint32 * uint32) list>([ struct (0u, 513u) ], snd (used run))
    Assert.Equal<byte[]>(sectorBytes 1 512, read run Mmio 512)

[<Theory>]
[<InlineData(0xff000000UL)>]
[<InlineData(0xff000800UL)>]
let ``read 4096 B into MMIO in one descriptor (aligned or crossing a page): used len 4097`` (addr: uint64) =
    let run = readInto addr 4096u
    Assert.Equal<struct (uint32 * uint32) list>([ struct (0u, 4097u) ], snd (used run))
    Assert.Equal<byte[]>(sectorBytes 1 4096, read run addr 4096)

[<Fact>]
let ``read 8192 B into MMIO: bogus descriptor, broken, used ring still, MMIO untouched, no status`` () =
    let before = ScenarioRunner.Run(Scenario(Profile.Qemu72, q35.Value, [||]))
    let run = readInto Mmio 8192u
    Assert.Equal<string list>([ "virtio: bogus descriptor or out of resources" ], List.ofSeq run.Virtio.Device.Errors)
    Assert.True run.Virtio.Device.Broken
    Assert.Equal(0us, fst (used run))
    Assert.Equal<byte[]>(read before Mmio 8192, read run Mmio 8192)
    Assert.Equal<byte[]>(read before Status 1, read run Status 1)

[<Fact>]
let ``header and data both in MMIO: the same failure`` () =
    let run =
        request VirtioBlk.TypeIn 1UL Mmio [ Mmio, 16u, N; Mmio + 0x1000UL, 512u, W ||| N; Status, 1u, W ] []

    Assert.Equal<string list>([ "virtio: bogus descriptor or out of resources" ], List.ofSeq run.Virtio.Device.Errors)
    Assert.Equal(0us, fst (used run))

[<Fact>]
let ``write 512 B from MMIO: used len 1, the disk holds the MMIO bytes read at map time`` () =
    let payload = Array.init 512 (fun i -> byte (i * 7 + 3))

    let run =
        request VirtioBlk.TypeOut 1UL Header [ Header, 16u, N; Mmio + 0x2000UL, 512u, N; Status, 1u, W ] [ WriteOp("memory", Mmio + 0x2000UL, payload) ]

    Assert.Equal<struct (uint32 * uint32) list>([ struct (0u, 1u) ], snd (used run))
    Assert.Equal<byte[]>(payload, run.Virtio.Blk.Disk.[512..1023])

[<Fact>]
let ``read 512 B into ROM: used len 513, status 0, ROM unchanged`` () =
    let before = ScenarioRunner.Run(Scenario(Profile.Qemu72, q35.Value, [||]))
    let run = readInto Rom 512u
    Assert.Equal<struct (uint32 * uint32) list>([ struct (0u, 513u) ], snd (used run))
    Assert.Equal(0uy, (read run Status 1).[0])
    Assert.Equal<byte[]>(read before Rom 512, read run Rom 512)

[<Fact>]
let ``write 8192 B from ROM in one descriptor works: ROM reads are direct, no page limit`` () =
    let run =
        request VirtioBlk.TypeOut 1UL Header [ Header, 16u, N; Rom, 8192u, N; Status, 1u, W ] []

    Assert.Empty run.Virtio.Device.Errors
    Assert.Equal<struct (uint32 * uint32) list>([ struct (0u, 1u) ], snd (used run))
    let before = ScenarioRunner.Run(Scenario(Profile.Qemu72, q35.Value, [||]))
    Assert.Equal<byte[]>(read before Rom 8192, run.Virtio.Blk.Disk.[512 .. 512 + 8191])

let private broken (run: ScenarioRun) (message: string) =
    Assert.Equal<string list>([ message ], List.ofSeq run.Virtio.Device.Errors)
    Assert.True run.Virtio.Device.Broken
    Assert.Equal(0us, fst (used run))
    Assert.Empty run.System.LiveMappings

[<Fact>]
let ``a chain loop: Looped descriptor`` () =
    // the data descriptor chains to itself (a loop through readable ones would hit the order check first)
    let run =
        ScenarioRunner.Run(
            Scenario(
                Profile.Qemu72,
                q35.Value,
                [| VirtioSetupOp("memory", 256, 0x100000UL, 0x101000UL, 0x102000UL, false, false, false, 2048, "")
                   WriteOp("memory", Header, Array.zeroCreate 16)
                   DescriptorsOp(
                       Nullable(),
                       [| DescriptorEntry(0, Header, 16u, N, 1us)
                          DescriptorEntry(1, Data, 512u, W ||| N, 1us) |]
                   )
                   PublishOp [| 0us |]
                   KickOp() |]
            )
        )

    broken run "Looped descriptor"

[<Fact>]
let ``a readable descriptor after a writable one: Incorrect order for descriptors`` () =
    broken
        (request VirtioBlk.TypeIn 1UL Header [ Header, 16u, N; Data, 512u, W ||| N; Data + 0x1000UL, 16u, N; Status, 1u, W ] [])
        "Incorrect order for descriptors"

[<Fact>]
let ``next index 300 of 256: Desc next is 300`` () =
    let run =
        ScenarioRunner.Run(
            Scenario(
                Profile.Qemu72,
                q35.Value,
                [| VirtioSetupOp("memory", 256, 0x100000UL, 0x101000UL, 0x102000UL, false, false, false, 2048, "")
                   DescriptorsOp(Nullable(), [| DescriptorEntry(0, Header, 16u, N, 300us) |])
                   PublishOp [| 0us |]
                   KickOp() |]
            )
        )

    broken run "Desc next is 300"

[<Fact>]
let ``avail ring head 300 of 256: Guest says index 300 is available`` () =
    let run =
        ScenarioRunner.Run(
            Scenario(
                Profile.Qemu72,
                q35.Value,
                [| VirtioSetupOp("memory", 256, 0x100000UL, 0x101000UL, 0x102000UL, false, false, false, 2048, "")
                   PublishOp [| 300us |]
                   KickOp() |]
            )
        )

    broken run "Guest says index 300 is available"

[<Fact>]
let ``a zero-length data descriptor: zero sized buffers are not allowed`` () =
    broken (request VirtioBlk.TypeIn 1UL Header [ Header, 16u, N; Data, 0u, W ||| N; Status, 1u, W ] []) "virtio: zero sized buffers are not allowed"
