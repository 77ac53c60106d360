/// Regressions named after the historical QEMU bugs they re-enact (docs/qemu-rules.md, HIST): each drives the
/// model into the situation of the bug and checks the invariant whose violation was the bug.
module Conformance.Properties.Tests.HistoricalBugTests

open System
open Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Properties
open Conformance.Properties.VirtioCases

let private W, N = VirtioConstants.DescFlagWrite, VirtioConstants.DescFlagNext

let private run (profile: Profile) (ops: ScenarioOp list) =
    ScenarioRunner.Run(Scenario(profile, layout, Array.ofList (setup 8 false true :: ops)))

[<Fact>]
let ``CVE-2016-6490: a zero-length descriptor is rejected, never looped on`` () =
    let r =
        run
            Profile.Qemu72
            [ DescriptorsOp(Nullable(), [| DescriptorEntry(0, 0x20000UL, 0u, W, 0us) |])
              PublishOp [| 0us |]
              PopOp "e" ]

    Assert.Equal<string list>([ "virtio: zero sized buffers are not allowed" ], List.ofSeq r.Virtio.Device.Errors)
    Assert.Empty r.System.LiveMappings

[<Fact>]
let ``CVE-2016-7422: a map that returns NULL is never used; the element is not returned and nothing stays mapped`` () =
    // two MMIO buffers need two bounce buffers at once; QEMU 7.2 has one
    let r =
        run
            Profile.Qemu72
            [ DescriptorsOp(
                  Nullable(),
                  [| DescriptorEntry(0, 0xff000000UL, 16u, N, 1us)
                     DescriptorEntry(1, 0xff001000UL, 16u, W, 0us) |]
              )
              PublishOp [| 0us |]
              PopOp "e" ]

    Assert.Equal<string list>([ "virtio: bogus descriptor or out of resources" ], List.ofSeq r.Virtio.Device.Errors)
    Assert.False(r.Virtio.Elements.ContainsKey "e")
    Assert.Empty r.System.LiveMappings
    Assert.False r.System.GlobalBounceInUse
    // the first buffer's 16 bounced bytes were given back by the undo (what QEMU 10.0.13 keeps: F-QEMU-2)
    Assert.Equal(16UL, r.Virtio.Device.BounceBytesUndone)

[<Fact>]
let ``CVE-2016-5403: a guest exceeding the queue size breaks the device instead of allocating more elements`` () =
    let r =
        run
            Profile.Qemu72
            [ DescriptorsOp(Nullable(), [| for i in 0..7 -> DescriptorEntry(i, 0x20000UL + uint64 i * 0x100UL, 16u, W, 0us) |])
              PublishOp [| for i in 0..15 -> uint16 (i % 8) |]
              yield! [ for i in 0..8 -> PopOp(sprintf "e%d" i) :> ScenarioOp ] ]

    Assert.Equal<string list>([ "Virtqueue size exceeded" ], List.ofSeq r.Virtio.Device.Errors)
    Assert.Equal(8, r.Virtio.Device.Queues.[0].InUse)

[<Fact>]
let ``CVE-2022-26353: mappings made before an error in the chain are released (no leak on the error path)`` () =
    // readable buffer mapped (bounce), then a writable one, then a readable one: order error after mapping two
    let r =
        run
            Profile.Qemu72
            [ DescriptorsOp(
                  Nullable(),
                  [| DescriptorEntry(0, 0xff000000UL, 16u, N, 1us)
                     DescriptorEntry(1, 0x21000UL, 16u, W ||| N, 2us)
                     DescriptorEntry(2, 0x22000UL, 16u, 0us, 0us) |]
              )
              PublishOp [| 0us |]
              PopOp "e" ]

    Assert.Equal<string list>([ "Incorrect order for descriptors" ], List.ofSeq r.Virtio.Device.Errors)
    Assert.Empty r.System.LiveMappings
    Assert.All(r.System.Owners, fun o -> Assert.Equal(r.Steps.[0].RefCounts.[o.Name], o.RefCount))

[<Fact>]
let ``CVE-2022-26354 class: a popped element is released exactly once; releasing it again is refused`` () =
    let r =
        run
            Profile.Qemu72
            [ DescriptorsOp(Nullable(), [| DescriptorEntry(0, 0x20000UL, 16u, W, 0us) |])
              PublishOp [| 0us |]
              PopOp "e"
              ReleaseOp("e", "detach", 0u)
              ReleaseOp("e", "push", 16u) ]

    Assert.Null r.Steps.[4].Skipped
    Assert.NotNull r.Steps.[5].Skipped
    Assert.Equal(0, r.Virtio.Device.Queues.[0].InUse)

[<Fact>]
let ``virtio-blk iov_discard (2020): unmap gets exactly the pieces pop mapped, header and status sharing descriptors with data`` () =
    // header + data in one readable descriptor, data + status in one writable one: virtio-blk trims them in
    // working copies only, so every mapping is released with its original length
    let header = Array.zeroCreate<byte> 16
    header.[0] <- 1uy // OUT

    let r =
        ScenarioRunner.Run(
            Scenario(
                Profile.Qemu72,
                layout,
                [| setup 8 true true
                   WriteOp("memory", 0x20000UL, header)
                   DescriptorsOp(
                       Nullable(),
                       [| DescriptorEntry(0, 0x20000UL, 16u + 512u, N, 1us)
                          DescriptorEntry(1, 0x30000UL, 1u, W, 0us) |]
                   )
                   PublishOp [| 0us |]
                   KickOp()
                   CompleteIoOp() |]
            )
        )

    Assert.Empty r.Virtio.Device.Errors
    Assert.Empty r.System.LiveMappings
    Assert.All(r.System.Owners, fun o -> Assert.Equal(r.Steps.[0].RefCounts.[o.Name], o.RefCount))
