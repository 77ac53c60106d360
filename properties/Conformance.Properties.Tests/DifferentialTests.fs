/// Generated differential cases against real QEMU (category "Qemu"): one virtio-blk request per case —
/// IN, OUT, FLUSH, GET_ID or an unsupported type; data split over 1-3 descriptors placed in RAM,
/// pc-testdev MMIO, ROM, unassigned space or across region ends; sectors in and out of range — runs on a
/// fresh QEMU and on the model (QEMU's q35 layout, its ROM image copied in), and every observation must be
/// equal: used ring, broken flag, error lines, and the bytes of every buffer afterwards.
/// CONFORMANCE_QEMU_CASES sets the number of cases (default 300).
module Conformance.Properties.Tests.DifferentialTests

open System
open Xunit
open Xunit.Abstractions
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Qemu
open Conformance.Properties
open Conformance.Properties.Tests.QemuObservationTests
open Conformance.Properties.Tests.LiveQemuTests

let private places =
    [ 0x300000UL, "RAM"; 0x3ffff00UL, "RAM end"; Mmio + 0x100UL, "MMIO"; Mmio + 0xff00UL, "MMIO end"; Rom + 0x1000UL, "ROM"; 0x10000000UL, "unassigned" ]

let private genCase =
    gen {
        let! typ = Gen.frequency [ 4, Gen.constant 0u; 3, Gen.constant 1u; 1, Gen.constant 4u; 1, Gen.constant 8u; 1, Gen.constant 6u ]
        let! n = Gen.choose (1, 3)
        let! pieces =
            Gen.listOfLength n (Gen.zip (Gen.frequency [ 6, Gen.constant places.[0]; 4, Gen.elements places ]) (Gen.frequency [ 3, Gen.elements [ 1u; 16u; 511u; 512u; 513u ]; 2, Gen.elements [ 4095u; 4096u; 4097u; 8192u ]; 1, Gen.choose (1, 9000) |> Gen.map uint32 ]))
        let! sector = Gen.frequency [ 4, Gen.constant 1UL; 1, Gen.constant 2047UL; 1, Gen.constant 5000UL ]
        let! statusAt = Gen.elements [ Status; Mmio + 0x8000UL ]
        let! transport = Gen.elements [ VirtioTransport.Legacy; VirtioTransport.Modern ]
        // pieces of the same place are laid out one after another
        let offsets = Collections.Generic.Dictionary<uint64, uint64>()
        let data =
            [ for ((place, _), len) in pieces ->
                let off = match offsets.TryGetValue place with | true, o -> o | _ -> 0UL
                offsets.[place] <- off + uint64 len + 0x10UL
                place + off, len ]
        let flags = if typ = 1u then N else W ||| N
        let descriptors =
            [ yield 0, Header, 16u, N, 1us
              for (k, (a, l)) in List.indexed data -> k + 1, a, l, flags, uint16 (k + 2)
              yield data.Length + 1, statusAt, 1u, W, 0us ]
        let label = sprintf "%A: type %d, %s" transport typ (pieces |> List.map (fun ((_, p), _) -> p) |> List.distinct |> String.concat "+")
        let look = (statusAt, 1u) :: data |> List.map (fun (a, l) -> a, int (min l 4096u))
        return label, transport, { Header = header typ sector; Descriptors = descriptors; Before = []; Look = look }
    }

/// Raw qtest round trips per second on this process (a 4-byte read each): the ceiling of the differential rate.
let qtestRoundTrips (q: QemuProcess) =
    let sw = Diagnostics.Stopwatch.StartNew()
    let n = 2000
    for i in 1 .. n do q.Qtest.Read(Data, 4) |> ignore
    float n / sw.Elapsed.TotalSeconds

type DifferentialTests(output: ITestOutputHelper) =
    let caseCount () =
        match Environment.GetEnvironmentVariable "CONFORMANCE_QEMU_CASES" with
        | null | "" -> 300
        | s -> Int32.Parse s

    [<SkippableFact; Trait("Category", "Qemu")>]
    member _.generated_virtio_blk_requests_agree_with_qemu() =
        let binary = qemu ()
        // QEMU's ROM image, so ROM buffers hold the same bytes on both sides
        let romImage =
            use q = new QemuProcess(binary, VirtioContext.InitialDisk 16)
            q.Qtest.Read(0xfffc0000UL, 0x40000)
        // one QEMU for every case: reset, memory and disk restored between cases (VirtioBlkSession)
        use legacy = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048, transport = VirtioTransport.Legacy)
        use modern = new VirtioBlkSession(binary, VirtioContext.InitialDisk 2048, transport = VirtioTransport.Modern)
        let deviations = KnownDeviations.load ()
        let qemuTime, modelTime = Diagnostics.Stopwatch(), Diagnostics.Stopwatch()
        let check (label: string, transport: VirtioTransport, request: Request) =
            qemuTime.Start()
            let real = requestOnSession (if transport = VirtioTransport.Modern then modern else legacy) request
            qemuTime.Stop()
            modelTime.Start()
            let model, run = requestOnModel binary.Profile (Some romImage) request
            modelTime.Stop()
            let problems = differences request real model run
            let scenario = ScenarioJson.Write(Scenario(binary.Profile, run.Scenario.Layout, run.Scenario.Ops, Description = label))
            let problems = if problems.IsEmpty then [] else (sprintf "case: %s" label) :: problems
            (problems.IsEmpty |> Prop.label (String.concat "\n" problems + "\nscenario (model side):\n" + scenario))
            |> Prop.classify (transport = VirtioTransport.Modern) "modern transport"
            |> Prop.classify (transport = VirtioTransport.Legacy) "legacy transport"
            |> Prop.classify (label.Contains "MMIO") "a buffer in MMIO"
            |> Prop.classify (label.Contains "ROM") "a buffer in ROM"
            |> Prop.classify (label.Contains "unassigned") "a buffer in unassigned space"
            |> Prop.classify (label.Contains "end") "a buffer across a region end"
            |> Prop.classify (real.NeedsReset = Some true) "modern transport: DEVICE_NEEDS_RESET seen"
            |> Prop.classify model.IsBroken "device broke"
            |> Prop.classify model.Unspecified (sprintf "known deviation %s: uninitialised bounce bytes written back" (KnownDeviations.idFor deviations "F-BLK-2"))
        let replay =
            match Environment.GetEnvironmentVariable "CONFORMANCE_REPLAY" with
            | null | "" -> None
            | t -> let p = t.Split(',') in Some { Rnd = Rnd(UInt64.Parse p.[0], UInt64.Parse p.[1]); Size = None }
        let config = Config.QuickThrowOnFailure.WithMaxTest(caseCount ()).WithQuietOnSuccess(false).WithReplay(replay)
        // start both processes outside the timed part
        legacy.Run(toCase (snd cases.Head)) |> ignore
        modern.Run(toCase (snd cases.Head)) |> ignore
        let sw = Diagnostics.Stopwatch.StartNew()
        Check.One(config, Prop.forAll (Arb.fromGen genCase) check)
        let elapsed = sw.Elapsed.TotalSeconds
        let roundTrips = qtestRoundTrips legacy.Process
        let ms (t: TimeSpan) = t.TotalMilliseconds / float (caseCount ())
        let struct (p1, s1, w1, r1), struct (p2, s2, w2, r2) = legacy.Time, modern.Time
        output.WriteLine(sprintf "QEMU side per case: reset and restore %.2f ms, request %.2f ms, device %.2f ms, read back %.2f ms"
                             (ms (p1 + p2)) (ms (s1 + s2)) (ms (w1 + w2)) (ms (r1 + r2)))
        output.WriteLine(sprintf "%d differential cases in %.1f s: %.1f cases/s on %d QEMU processes, one per transport (QEMU side %.1f ms/case, model side %.1f ms/case); raw qtest round trips on the same process: %.0f/s"
                             (caseCount ()) elapsed (float (caseCount ()) / elapsed) (legacy.ProcessesStarted + modern.ProcessesStarted)
                             (qemuTime.Elapsed.TotalMilliseconds / float (caseCount ())) (modelTime.Elapsed.TotalMilliseconds / float (caseCount ())) roundTrips)
