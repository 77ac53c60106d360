/// The journal of device callbacks keeps runs of equal-sized callbacks as one entry; read as a list it
/// must still be every callback, in order, each with its own offset, size and value.
module Conformance.Properties.Tests.DeviceAccessListTests

open Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.LayoutBuilding
open Conformance.Properties.Oracle

let private layout =
    Spec.OneSpace
        [ Spec.Region("dev", RegionKind.Io, u128 0x10000UL, 0x100000UL)
          Spec.Region("dev2", RegionKind.Io, u128 0x10000UL, 0x110000UL) ]

let private bytes n seed =
    Array.init n (fun i -> byte ((i * 7 + seed) % 251))

let private le (data: byte[]) (at: int) (size: int) =
    Seq.fold (fun v k -> (v <<< 8) ||| uint64 data.[at + k]) 0UL (seq { size - 1 .. -1 .. 0 })

let private write region offset size value =
    DeviceAccess(region, MmioAccess(true, offset, size, value))

let private baseOf region =
    if region = "dev" then 0x100000UL else 0x110000UL

/// A fresh system whose journal holds five runs: 1, 2 and 4 bytes (alignment at +1), then 1,024 four-byte
/// callbacks of one page, then two in another region; and those 1,029 callbacks.
let private journalled () =
    let s = MemorySystem(layout, Profile.Qemu72)
    let mem = s.Space "memory"
    let odd = bytes 7 1
    let page = bytes 4096 2
    let two = bytes 8 3
    s.Write(mem, 0x100001UL, System.ReadOnlySpan odd)
    s.Write(mem, 0x100000UL, System.ReadOnlySpan page)
    s.Write(mem, 0x110000UL, System.ReadOnlySpan two)

    let expected =
        [ write "dev" 1UL 1u (le odd 0 1)
          write "dev" 2UL 2u (le odd 1 2)
          write "dev" 4UL 4u (le odd 3 4) ]
        @ [ for k in 0..1023 -> write "dev" (uint64 (4 * k)) 4u (le page (4 * k) 4) ]
        @ [ write "dev2" 0UL 4u (le two 0 4); write "dev2" 4UL 4u (le two 4 4) ]

    s, expected

/// The journal read both ways: enumerated, and index by index up to its Count.
let private bothWays (journal: System.Collections.Generic.IReadOnlyList<DeviceAccess>) =
    List.ofSeq journal, [ for i in 0 .. journal.Count - 1 -> journal.[i] ]

/// Index i of the list is refused (ArgumentOutOfRangeException), not answered with a stale or made-up callback.
let private noCallbackAt (list: System.Collections.Generic.IReadOnlyList<DeviceAccess>) (i: int) =
    Assert.Throws<System.ArgumentOutOfRangeException>(fun () -> list.[i] |> ignore)
    |> ignore

[<Fact>]
let ``the journal lists every callback with its own offset, size and value, across runs that break and resume`` () =
    let s, expected = journalled ()
    let journal = s.AccessJournal
    Assert.Equal(expected.Length, journal.Count)
    let listed, indexed = bothWays journal
    Assert.Equal<DeviceAccess list>(expected, listed)
    Assert.Equal<DeviceAccess list>(expected, indexed)

    // cut inside the long run, then continue it: the callbacks after the cut are gone, the new one follows
    s.TrimAccessJournal 503
    s.Write(s.Space "memory", 0x100000UL + 500UL * 4UL, System.ReadOnlySpan(bytes 4 9))
    Assert.Equal(504, journal.Count)
    Assert.Equal<DeviceAccess list>(List.take 503 expected, List.ofSeq journal |> List.take 503)
    Assert.Equal(write "dev" 2000UL 4u (le (bytes 4 9) 0 4), journal.[503])

/// Cuts before the start, at and next to every edge between runs, inside the long run and past the end:
/// what is left is exactly the callbacks before the cut (read either way, nothing more by index), and the
/// callbacks made afterwards follow them, the first one continuing the cut run where it can.
[<Fact>]
let ``trimming the journal anywhere keeps exactly the callbacks before the cut, and later ones follow them`` () =
    for cut in [ -1; 0; 1; 2; 3; 4; 503; 1025; 1026; 1027; 1028; 1029; 1030; 5000 ] do
        let s, expected = journalled ()
        let mem = s.Space "memory"
        let journal = s.AccessJournal
        s.TrimAccessJournal cut
        let kept = List.take (min expected.Length (max 0 cut)) expected
        Assert.Equal(kept.Length, journal.Count)
        let listed, indexed = bothWays journal
        Assert.Equal<DeviceAccess list>(kept, listed)
        Assert.Equal<DeviceAccess list>(kept, indexed)
        // a forgotten callback (or one never made) is not there to be read by index
        noCallbackAt journal kept.Length
        noCallbackAt journal -1

        // the callback the cut removed first, made again with new bytes (past the end: one more in dev2),
        // then one that continues nothing
        let again =
            match List.tryItem kept.Length expected with
            | Some a -> a
            | None -> write "dev2" 8UL 4u 0UL

        let size = int again.Access.Size
        let data = bytes size (cut &&& 0xff)
        let other = bytes 4 11
        s.Write(mem, baseOf again.Region + again.Access.Offset, System.ReadOnlySpan data)
        s.Write(mem, 0x110040UL, System.ReadOnlySpan other)

        let after =
            kept
            @ [ write again.Region again.Access.Offset again.Access.Size (le data 0 size)
                write "dev2" 0x40UL 4u (le other 0 4) ]

        Assert.Equal(after.Length, journal.Count)
        let listed, indexed = bothWays journal
        Assert.Equal<DeviceAccess list>(after, listed)
        Assert.Equal<DeviceAccess list>(after, indexed)

[<Fact>]
let ``a step's callbacks start where the step did, and later changes to the journal leave them alone`` () =
    let page = bytes 4096 5

    let ops: ScenarioOp[] =
        [| WriteOp("memory", 0x100000UL, bytes 6 4)
           WriteOp("memory", 0x100006UL, page)
           WriteOp("memory", 0x110000UL, bytes 4 6) |]

    let run = ScenarioRunner.Run(Scenario(Profile.Qemu72, layout, ops))
    let all = List.ofSeq run.System.AccessJournal
    let counts = run.Steps |> Seq.map (fun s -> s.DeviceAccesses.Count) |> List.ofSeq
    Assert.Equal(all.Length, List.sum counts)
    let second = run.Steps.[1].DeviceAccesses
    Assert.Equal<DeviceAccess list>(all |> List.skip counts.[0] |> List.take counts.[1], List.ofSeq second)
    Assert.Equal(write "dev" 6UL 2u (le page 0 2), second.[0])
    noCallbackAt second second.Count
    // clearing forgets every callback so far: the journal starts again with the next one
    run.System.ClearAccessJournal()
    let sixteen = bytes 16 7
    run.System.Write(run.System.Space "memory", 0x100000UL, System.ReadOnlySpan sixteen)

    Assert.Equal<DeviceAccess list>([ for k in 0..3 -> write "dev" (uint64 (4 * k)) 4u (le sixteen (4 * k) 4) ], List.ofSeq run.System.AccessJournal)

    Assert.Equal<DeviceAccess list>(all |> List.skip counts.[0] |> List.take counts.[1], List.ofSeq second)

/// A run is callbacks in one direction at offsets that follow each other: a read right after a write
/// continues no run (nor a write after a read), and a callback at the offset the last one had is not
/// the next one in its run. Each is listed as made.
[<Fact>]
let ``a callback in the other direction, or at the same offset again, starts a new run`` () =
    let s = MemorySystem(layout, Profile.Qemu72)
    let mem = s.Space "memory"
    let first = bytes 4 1
    let again = bytes 4 2
    s.Write(mem, 0x100000UL, System.ReadOnlySpan first)
    let readBack = Array.zeroCreate<byte> 4
    s.Read(mem, 0x100004UL, System.Span readBack)
    s.Write(mem, 0x100008UL, System.ReadOnlySpan again)
    s.Write(mem, 0x100008UL, System.ReadOnlySpan first)

    let expected =
        [ write "dev" 0UL 4u (le first 0 4)
          DeviceAccess("dev", MmioAccess(false, 4UL, 4u, le readBack 0 4))
          write "dev" 8UL 4u (le again 0 4)
          write "dev" 8UL 4u (le first 0 4) ]

    let listed, indexed = bothWays s.AccessJournal
    Assert.Equal<DeviceAccess list>(expected, listed)
    Assert.Equal<DeviceAccess list>(expected, indexed)
