/// Generators for virtqueue cases: a fixed machine-like layout (RAM, an MMIO window, ROM, holes), rings in
/// RAM, chains of buffers placed anywhere, and a generic device that pops and releases elements. Malformed
/// chains are generated together with the verdict QEMU reaches on them (an oracle by construction).
module Conformance.Properties.VirtioCases

open System
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Properties.Oracle
open Conformance.Properties.LayoutBuilding

let DescRing, AvailRing, UsedRing = 0x10000UL, 0x11000UL, 0x12000UL

/// RAM 0-1 MiB, pc-testdev-like MMIO at 0xff000000 (64 KiB), ROM at 0xfffe0000 (128 KiB); the rest unassigned.
let layout =
    Spec.OneSpace
        [ Spec.Region("ram", RegionKind.Ram, u128 0x100000UL)
          Spec.Region("testdev", RegionKind.Io, u128 0x10000UL, 0xff000000UL)
          Spec.Region("bios", RegionKind.Rom, u128 0x20000UL, 0xfffe0000UL) ]

/// Where a buffer lives.
let genBufferAddr =
    Gen.frequency
        [ 12, Gen.choose (0x20, 0xe0) |> Gen.map (fun p -> uint64 p * 0x1000UL)
          4, Gen.choose (0x20000, 0xe0000) |> Gen.map uint64
          3, Gen.choose (0, 0xf0) |> Gen.map (fun p -> 0xff000000UL + uint64 p * 0x100UL)
          1, Gen.constant 0xfffe8000UL
          1, Gen.constant 0x40000000UL
          1, Gen.constant 0xff800UL ] // straddles the end of RAM

let genBufferLen =
    Gen.frequency
        [ 4, Gen.elements [ 1u; 16u; 512u; 513u ]
          3, Gen.elements [ 4096u; 4097u; 8192u ]
          2, Gen.choose (1, 9000) |> Gen.map uint32 ]

/// A well-formed chain: some device-readable buffers, then some device-writable ones.
type Chain =
    { Out: (uint64 * uint32) list
      In: (uint64 * uint32) list
      Indirect: bool }

let genChain =
    gen {
        let! outs = Gen.choose (0, 3)
        let! ins = Gen.choose ((if outs = 0 then 1 else 0), 3)
        let! o = Gen.listOfLength outs (Gen.zip genBufferAddr genBufferLen)
        let! i = Gen.listOfLength ins (Gen.zip genBufferAddr genBufferLen)
        let! indirect = Gen.frequency [ 4, Gen.constant false; 1, Gen.constant true ]
        return { Out = o; In = i; Indirect = indirect }
    }

/// How the driver breaks a chain, and the virtio_error QEMU answers with.
type Malformation =
    | Loop
    | NextOutOfRange
    | HeadOutOfRange
    | ReadableAfterWritable
    | ZeroLength
    | IndirectBadSize
    | IndirectOffRam
    | TooManyInUse
    | TooManyPieces

let expectedError (m: Malformation) (num: int) =
    match m with
    | Loop -> "Looped descriptor"
    | NextOutOfRange -> sprintf "Desc next is %d" num
    | HeadOutOfRange -> sprintf "Guest says index %d is available" num
    | ReadableAfterWritable -> "Incorrect order for descriptors"
    | ZeroLength -> "virtio: zero sized buffers are not allowed"
    | IndirectBadSize -> "Invalid size for indirect buffer table"
    | IndirectOffRam -> "Cannot map indirect buffer"
    | TooManyInUse -> "Virtqueue size exceeded"
    | TooManyPieces -> "virtio: too many write descriptors in indirect table"

/// Builds the operations that put chains into the ring, allocating descriptor indices from `next`
/// (indirect tables go at 0x30000 + 0x1000 per chain). Returns the ops and the heads.
/// A chain's descriptors: buffer k at index k of `indices`, each but the last with NEXT to the one after.
let linked (bufs: (uint64 * uint32 * uint16) list) (indices: int list) =
    List.mapi2
        (fun k (a, l, f) idx ->
            let last = k = bufs.Length - 1

            DescriptorEntry(idx, a, l, (if last then f else f ||| VirtioConstants.DescFlagNext), (if last then 0us else uint16 indices.[k + 1])))
        bufs
        indices

let layChains (num: int) (firstIndex: int) (firstTable: int) (chains: Chain list) =
    let ops = ResizeArray<ScenarioOp>()
    let heads = ResizeArray<uint16>()
    let mutable next = firstIndex
    let mutable table = firstTable

    for c in chains do
        let bufs =
            (c.Out |> List.map (fun (a, l) -> a, l, 0us))
            @ (c.In |> List.map (fun (a, l) -> a, l, VirtioConstants.DescFlagWrite))

        if c.Indirect then
            let tableAddr = 0x30000UL + uint64 table * 0x1000UL
            table <- table + 1

            let entries = linked bufs [ 0 .. bufs.Length - 1 ]

            ops.Add(DescriptorsOp(Nullable tableAddr, Array.ofList entries))
            let head = next % num
            next <- next + 1
            ops.Add(DescriptorsOp(Nullable(), [| DescriptorEntry(head, tableAddr, uint32 (16 * bufs.Length), VirtioConstants.DescFlagIndirect, 0us) |]))
            heads.Add(uint16 head)
        else
            let indices = bufs |> List.mapi (fun i _ -> (next + i) % num)
            next <- next + bufs.Length

            let entries = linked bufs indices

            ops.Add(DescriptorsOp(Nullable(), Array.ofList entries))
            heads.Add(uint16 indices.Head)

    List.ofSeq ops, List.ofSeq heads, next, table

let setup (num: int) (eventIdx: bool) (version1: bool) =
    VirtioSetupOp("memory", num, DescRing, AvailRing, UsedRing, eventIdx, true, version1, 64, "") :> ScenarioOp

/// A generic device's session: rounds of "driver adds chains, device pops some, releases some".
let genGenericCase (profile: Profile) =
    gen {
        let! num = Gen.elements [ 8; 16; 256 ]
        let! eventIdx = Gen.elements [ true; false ]
        let! version1 = Gen.elements [ true; false ]
        let! rounds = Gen.choose (1, 4)
        let ops = ResizeArray<ScenarioOp>([ setup num eventIdx version1 ])
        let mutable nextIndex = 0
        let mutable nextTable = 0
        let mutable popped = 0
        let live = ResizeArray<string>()

        for _ in 1..rounds do
            let! k = Gen.choose (0, 3)
            let! chains = Gen.listOfLength k genChain

            let descs =
                chains
                |> List.sumBy (fun c -> if c.Indirect then 1 else c.Out.Length + c.In.Length)

            if nextIndex + descs <= num then
                let laid, heads, n, t = layChains num nextIndex nextTable chains
                nextIndex <- n
                nextTable <- t
                ops.AddRange laid

                if not heads.IsEmpty then
                    ops.Add(PublishOp(Array.ofList heads))

            let! extra = Gen.choose (0, 1)
            let pops = k + extra

            for _ in 1..pops do
                let name = sprintf "e%d" popped
                popped <- popped + 1
                ops.Add(PopOp name)
                live.Add name

            let! releases = Gen.choose (live.Count / 2, live.Count)

            for _ in 1..releases do
                let! pick = Gen.choose (0, live.Count - 1)
                let! how = Gen.frequency [ 6, Gen.constant "push"; 2, Gen.constant "detach"; 1, Gen.constant "unpop" ]

                let! len =
                    Gen.frequency
                        [ 3, Gen.constant 0u
                          3, Gen.elements [ 1u; 512u; 513u; 4096u ]
                          2, Gen.choose (0, 20000) |> Gen.map uint32 ]

                ops.Add(ReleaseOp(live.[pick], how, len))
                live.RemoveAt pick

        // sometimes the driver resets the device and sets it up again (virtio_reset forgets elements without
        // unmapping them, R5), then one more round
        let! reset = Gen.frequency [ 3, Gen.constant false; 1, Gen.constant true ]

        let! releaseFirst = Gen.elements [ true; false ]

        if reset then
            // a device releases what it holds before the reset, or (a buggy device) leaves it to be forgotten
            if releaseFirst then
                for name in live do
                    ops.Add(ReleaseOp(name, "detach", 0u))

            live.Clear()
            ops.Add(VirtioResetOp())
            ops.Add(setup num eventIdx version1)
            let! k = Gen.choose (1, 3)
            let! chains = Gen.listOfLength k genChain

            let descs =
                chains
                |> List.sumBy (fun c -> if c.Indirect then 1 else c.Out.Length + c.In.Length)

            let chains = if descs <= num then chains else []
            let laid, heads, _, _ = layChains num 0 nextTable chains
            ops.AddRange laid

            if not heads.IsEmpty then
                ops.Add(PublishOp(Array.ofList heads))

            for _ in 1 .. chains.Length do
                let name = sprintf "e%d" popped
                popped <- popped + 1
                ops.Add(PopOp name)
                live.Add name

            for name in live do
                ops.Add(ReleaseOp(name, "push", 1u))

        return Scenario(profile, layout, ops.ToArray())
    }

/// A malformed chain with the error QEMU reports for it.
let genMalformedCase (profile: Profile) =
    gen {
        let! m =
            Gen.elements
                [ Loop
                  NextOutOfRange
                  HeadOutOfRange
                  ReadableAfterWritable
                  ZeroLength
                  IndirectBadSize
                  IndirectOffRam
                  TooManyInUse
                  TooManyPieces ]

        let! num = Gen.elements [ 2; 4; 8; 16; 256 ]
        // an inuse overflow pops num + 1 times: keep that case small enough to read
        let num = if m = TooManyInUse then min num 8 else num
        let! addr = Gen.elements [ 0x20000UL; 0x21000UL; 0xff000000UL ]
        let! len = Gen.elements [ 16u; 512u; 4096u ]
        let ops = ResizeArray<ScenarioOp>([ setup num false true ])
        let d i a l f n = DescriptorEntry(i, a, l, f, n)

        let W, N, I =
            VirtioConstants.DescFlagWrite, VirtioConstants.DescFlagNext, VirtioConstants.DescFlagIndirect

        match m with
        | Loop ->
            // a chain 0 -> 1 -> ... -> 0 over the whole table
            // (in RAM, so no bounce buffer runs out before the loop is found)
            ops.Add(DescriptorsOp(Nullable(), [| for i in 0 .. num - 1 -> d i (0x20000UL + uint64 i * 0x100UL) len N (uint16 ((i + 1) % num)) |]))
            ops.Add(PublishOp [| 0us |])
        | NextOutOfRange ->
            ops.Add(DescriptorsOp(Nullable(), [| d 0 addr len N (uint16 num) |]))
            ops.Add(PublishOp [| 0us |])
        | HeadOutOfRange -> ops.Add(PublishOp [| uint16 num |])
        | ReadableAfterWritable ->
            ops.Add(DescriptorsOp(Nullable(), [| d 0 addr len (W ||| N) 1us; d 1 (addr + 0x1000UL) len 0us 0us |]))
            ops.Add(PublishOp [| 0us |])
        | ZeroLength ->
            ops.Add(DescriptorsOp(Nullable(), [| d 0 addr len N 1us; d 1 (addr + 0x1000UL) 0u W 0us |]))
            ops.Add(PublishOp [| 0us |])
        | IndirectBadSize ->
            let! bad = Gen.elements [ 0u; 8u; 24u; 100u ]
            ops.Add(DescriptorsOp(Nullable(), [| d 0 0x30000UL bad I 0us |]))
            ops.Add(PublishOp [| 0us |])
        | IndirectOffRam ->
            // a table that runs off the end of RAM: its region cache covers less than desc.len
            let! entries = Gen.elements [ 2u; 4u ]
            ops.Add(DescriptorsOp(Nullable(), [| d 0 (0x100000UL - 16UL) (16u * entries) I 0us |]))
            ops.Add(PublishOp [| 0us |])
        | TooManyPieces ->
            // an indirect table of 1025 writable 16-byte buffers: more scatter-gather pieces than VIRTQUEUE_MAX_SIZE
            let entries =
                [| for i in 0..1024 -> d i (0x40000UL + uint64 i * 0x10UL) 16u (if i < 1024 then W ||| N else W) (uint16 (i + 1)) |]

            ops.Add(DescriptorsOp(Nullable 0x80000UL, entries))
            ops.Add(DescriptorsOp(Nullable(), [| d 0 0x80000UL (uint32 (16 * entries.Length)) I 0us |]))
            ops.Add(PublishOp [| 0us |])
        | TooManyInUse ->
            // every slot published twice: the device pops num elements, then finds inuse == num
            ops.Add(DescriptorsOp(Nullable(), [| for i in 0 .. num - 1 -> d i (0x20000UL + uint64 i * 0x100UL) 16u W 0us |]))
            ops.Add(PublishOp [| for i in 0 .. 2 * num - 1 -> uint16 (i % num) |])

        for i in 0 .. (if m = TooManyInUse then num else 0) do
            ops.Add(PopOp(sprintf "e%d" i))

        return Scenario(profile, layout, ops.ToArray(), Description = "expect: " + expectedError m num)
    }
