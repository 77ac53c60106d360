/// The journal of device callbacks keeps runs of equal-sized callbacks as one entry; read as a list it
/// must still be every callback, in order, each with its own offset, size and value.
module Conformance.Properties.Tests.DeviceAccessListTests

open Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.LayoutBuilding
open Conformance.Properties.Oracle

let private layout =
    let system =
        Spec.Copy(
            Spec.Region("system", RegionKind.Container, two64),
            subregions =
                [ Spec.Region("dev", RegionKind.Io, u128 0x10000UL, 0x100000UL)
                  Spec.Region("dev2", RegionKind.Io, u128 0x10000UL, 0x110000UL) ]
        )

    LayoutSpec([| system |], [| AddressSpaceSpec("memory", "system", 4096UL) |], DirtyLogging.Default)

let private bytes n seed =
    Array.init n (fun i -> byte ((i * 7 + seed) % 251))

let private le (data: byte[]) (at: int) (size: int) =
    Seq.fold (fun v k -> (v <<< 8) ||| uint64 data.[at + k]) 0UL (seq { size - 1 .. -1 .. 0 })

let private write region offset size value =
    DeviceAccess(region, MmioAccess(true, offset, size, value))

[<Fact>]
let ``the journal lists every callback with its own offset, size and value, across runs that break and resume`` () =
    let s = MemorySystem(layout, Profile.Qemu72)
    let mem = s.Space "memory"
    let odd = bytes 7 1
    let page = bytes 4096 2
    let two = bytes 8 3
    // 1, 2 and 4 bytes (alignment at +1), then a run of 1,024 four-byte callbacks, then another region
    s.Write(mem, 0x100001UL, System.ReadOnlySpan odd)
    s.Write(mem, 0x100000UL, System.ReadOnlySpan page)
    s.Write(mem, 0x110000UL, System.ReadOnlySpan two)

    let expected =
        [ write "dev" 1UL 1u (le odd 0 1)
          write "dev" 2UL 2u (le odd 1 2)
          write "dev" 4UL 4u (le odd 3 4) ]
        @ [ for k in 0..1023 -> write "dev" (uint64 (4 * k)) 4u (le page (4 * k) 4) ]
        @ [ write "dev2" 0UL 4u (le two 0 4); write "dev2" 4UL 4u (le two 4 4) ]

    let journal = s.AccessJournal
    Assert.Equal(expected.Length, journal.Count)
    Assert.Equal<DeviceAccess list>(expected, List.ofSeq journal)
    Assert.Equal<DeviceAccess list>(expected, [ for i in 0 .. journal.Count - 1 -> journal.[i] ])

    // cut inside the long run, then continue it: the callbacks after the cut are gone, the new one follows
    s.TrimAccessJournal 503
    s.Write(mem, 0x100000UL + 500UL * 4UL, System.ReadOnlySpan(bytes 4 9))
    Assert.Equal(504, journal.Count)
    Assert.Equal<DeviceAccess list>(List.take 503 expected, List.ofSeq journal |> List.take 503)
    Assert.Equal(write "dev" 2000UL 4u (le (bytes 4 9) 0 4), journal.[503])

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
    run.System.ClearAccessJournal()
    run.System.Write(run.System.Space "memory", 0x100000UL, System.ReadOnlySpan(bytes 16 7))
    Assert.Equal<DeviceAccess list>(all |> List.skip counts.[0] |> List.take counts.[1], List.ofSeq second)
