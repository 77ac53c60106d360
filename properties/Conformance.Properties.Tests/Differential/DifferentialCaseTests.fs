/// Requests in flight together in the differential (no QEMU needed): kicks that do not wait are generated
/// only where the outcome cannot depend on when QEMU's block layer completes, a write never runs together
/// with another request on its sectors, shrinking keeps both so, and the scenario a failure prints is
/// written as the scenario both targets run.
module Conformance.Properties.Tests.DifferentialCaseTests

open System.IO
open FsCheck
open FsCheck.FSharp
open global.Xunit
open Conformance.Model
open Conformance.Properties.Tests.TestSupport
open Conformance.Properties.DifferentialCases

let private specs =
    Gen.sampleWithSeed (Rnd(20261130UL, 0x9e3779b97f4a7c15UL)) 30 2000 (genSpecWith true true)

[<Fact>]
let ``in-flight kicks are generated often enough and only where no race decides the outcome`` () =
    let inFlight = specs |> Array.filter (fun c -> c.InFlight)
    // about 1 case in 10 of those with several kicks; 2000 cases give well over 50
    Assert.True(inFlight.Length >= 50, sprintf "only %d of %d cases kick with requests in flight" inFlight.Length specs.Length)
    Assert.All(inFlight, fun c -> Assert.True(inFlightIsDeterministic c.Kicks c.Requests, sprintf "%A" c))
    // the first group keeps what makes cases interesting (bounced buffers, malformed chains) across the sample
    Assert.Contains(
        inFlight,
        fun c ->
            c.Requests
            |> List.take c.Kicks.Head
            |> List.exists (fun r -> r.Pieces |> List.exists (fun (p, _) -> p <> 0))
    )

[<Fact>]
let ``shrinking an in-flight case never makes a racy one`` () =
    for c in specs |> Array.filter (fun c -> c.InFlight) |> Array.truncate 100 do
        for s in shrinkSpec c do
            Assert.True(not s.InFlight || inFlightIsDeterministic s.Kicks s.Requests, sprintf "%A shrank to %A" c s)

        Assert.Contains(shrinkSpec c, fun s -> not s.InFlight)

[<Fact>]
let ``an in-flight case publishes each kick's heads and completes I/O once, after the last kick`` () =
    let c = specs |> Array.find (fun c -> c.InFlight && c.Kicks.Length >= 2)
    let _, r = build 256 c
    Assert.True r.KicksInFlight
    let rings = (0x100000UL, 0x101000UL, 0x102000UL)
    let ops = requestOpsWith "memory" 256 rings false r

    let names (ops: Scenarios.ScenarioOp list) =
        ops |> List.map (fun o -> o.GetType().Name)

    let count name ops =
        names ops |> List.filter ((=) name) |> List.length

    Assert.Equal(1, count "CompleteIoOp" ops)
    Assert.Equal("CompleteIoOp", List.last (names ops))
    Assert.Equal(c.Kicks.Length, count "KickOp" ops)

    let groups =
        ops
        |> List.choose (function
            | :? Scenarios.PublishOp as p -> Some(List.ofSeq p.Heads)
            | _ -> None)

    Assert.Equal<int list>(c.Kicks, groups |> List.map List.length)
    Assert.Equal<uint16 list>(r.Heads, List.concat groups)
    // the same kicks each waiting for the previous ones complete after every kick
    let waiting =
        requestOpsWith "memory" 256 rings false { r with KicksInFlight = false }

    Assert.Equal(c.Kicks.Length, count "CompleteIoOp" waiting)

/// A write and another request on the same sectors, in flight together, end in whatever order QEMU's block
/// layer finishes them (a flaky "bytes differ" on 10.0.13 showed it): never generated, never shrunk to.
[<Fact>]
let ``no generated case races a write against another request on the same sectors`` () =
    let req typ sector =
        { Type = typ
          Sector = sector
          Pieces = [ 0, 512u ]
          StatusInMmio = false
          Malformed = WellFormed
          Indirect = false
          TableAt = TableInRam }

    Assert.True(racingWrites [] false [ req 1u 1UL; req 0u 1UL ])
    Assert.True(racingWrites [ 1; 1 ] true [ req 0u 1UL; req 1u 1UL ])
    Assert.False(racingWrites [ 1; 1 ] false [ req 1u 1UL; req 0u 1UL ]) // the driver waited: its order
    Assert.False(racingWrites [] false [ req 0u 1UL; req 0u 1UL ]) // two reads
    Assert.False(racingWrites [] false [ req 1u 1UL; req 1u 2UL ]) // neighbours
    Assert.False(racingWrites [] false [ req 1u 1UL; req 8u 1UL ]) // GET_ID reaches no sector
    Assert.All(specs, fun c -> Assert.False(racingWrites c.Kicks c.InFlight c.Requests, sprintf "%A" c))
    // the sample still has a write and a read of the same sectors one after the other
    Assert.Contains(specs, fun c -> c.Kicks.Length > 1 && not c.InFlight && racingWrites [] false c.Requests)

    for c in specs |> Array.filter (fun c -> c.Requests.Length > 1) |> Array.truncate 200 do
        for s in shrinkSpec c do
            Assert.False(racingWrites s.Kicks s.InFlight s.Requests, sprintf "%A shrank to %A" c s)

/// Data in MMIO never reaches the indirect tables, status bytes or rings that share pc-testdev's MMIO with it
/// (a request in flight writing over another's would let the order decide), and the sample still fills it.
[<Fact>]
let ``MMIO data stays clear of the tables, status bytes and rings of other requests`` () =
    let mmioBytes (c: CaseSpec) =
        c.Requests
        |> List.sumBy (fun r ->
            r.Pieces
            |> List.sumBy (fun (p, len) -> if p = 2 then uint64 len + 0x10UL else 0UL))

    Assert.All(specs, fun c -> Assert.True(mmioBytes c <= MmioDataRoom + 0x10UL, sprintf "%d bytes of MMIO data in %A" (mmioBytes c) c))
    Assert.Contains(specs, fun c -> mmioBytes c > MmioDataRoom / 2UL)

    let crowded =
        [ for _ in 1..3 ->
              { Type = 0u
                Sector = 1UL
                Pieces = [ 2, 9000u ]
                StatusInMmio = true
                Malformed = WellFormed
                Indirect = false
                TableAt = TableInRam } ]

    // the first two pieces fit (9,016 + 9,000 bytes), the third goes to unassigned space
    Assert.Equal<int list>([ 2; 2; 5 ], keepMmioDataClear crowded |> List.map (fun r -> fst r.Pieces.Head))
