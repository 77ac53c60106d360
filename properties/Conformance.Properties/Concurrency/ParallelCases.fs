/// Generating and shrinking parallel cases: a short sequential prefix and 2-4 threads of 1-5 commands,
/// weighted towards the contended edges (bounce maps of MMIO that exhaust the Qemu72 buffer or the Qemu92
/// budgets, clients registering while another thread unmaps).
module Conformance.Properties.ParallelCases

open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Properties.ParallelCommands

let private genMap =
    gen {
        let! space = Gen.frequency [ 3, Gen.constant 0; 2, Gen.constant 1 ]
        let! target = Gen.frequency [ 3, Gen.constant Mmio; 1, Gen.constant Ram ]
        let! offset = Gen.frequency [ 3, Gen.constant 0; 2, Gen.choose (1, 64); 1, Gen.choose (0, SliceSize - 1) ]
        let room = SliceSize - offset

        let! length =
            Gen.frequency
                [ 3, Gen.choose (1, min 64 room)
                  3, Gen.choose (min room 1024, min room 4096)
                  1, Gen.constant (min room 4096)
                  1, Gen.choose (1, room) ]

        let! write = Gen.elements [ true; false ]
        return Map(space, target, offset, length, write)
    }

/// One actor's commands; references point at its own earlier maps. A third of the time a command is a
/// whole DMA transfer (map for writing, fill, unmap), the idiom that actually changes device memory.
let genActor (size: int) : Gen<Command list> =
    let rec go n maps acc =
        if n <= 0 then
            Gen.constant (List.rev acc)
        else
            gen {
                let pick =
                    if maps = 0 then
                        Gen.constant 0
                    else
                        Gen.choose (0, maps - 1)

                let transfer =
                    gen {
                        let! m = genMap
                        let! fill = Gen.choose (1, 255)

                        match m with
                        | Map(sp, t, o, l, _) -> return [ Map(sp, t, o, l, true); WriteThrough(maps, byte fill); Unmap(maps, 100) ]
                        | other -> return [ other ]
                    }

                let! cs =
                    Gen.frequency
                        [ 4, Gen.map List.singleton genMap
                          2, transfer
                          (if maps > 0 then 2 else 0), Gen.map2 (fun m f -> [ WriteThrough(m, byte f) ]) pick (Gen.choose (1, 255))
                          (if maps > 0 then 4 else 0), Gen.map2 (fun m p -> [ Unmap(m, p) ]) pick (Gen.elements [ 100; 100; 50; 0 ])
                          1, Gen.map (Register >> List.singleton) (Gen.elements [ 0; 1 ])
                          1, Gen.map (Unregister >> List.singleton) (Gen.elements [ 0; 1 ]) ]

                let maps' =
                    maps
                    + (cs
                       |> List.filter (function
                           | Map _ -> true
                           | _ -> false)
                       |> List.length)

                return! go (n - cs.Length) maps' (List.rev cs @ acc)
            }

    go size 0 []

let genCase (profile: Profile) : Gen<ParallelCase> =
    gen {
        let! prefixLength = Gen.frequency [ 3, Gen.constant 0; 2, Gen.choose (1, 3) ]
        let! prefix = genActor prefixLength
        let! threads = Gen.choose (2, 4)
        let! lists = Gen.listOfLength threads (Gen.choose (1, 5) |> Gen.bind genActor)

        return
            { Profile = profile
              Prefix = prefix
              Threads = lists }
    }

/// Smaller cases first: fewer threads, fewer commands, shorter maps.
let shrinkCase (c: ParallelCase) : ParallelCase seq =
    let removeEach (xs: 'a list) =
        seq { for i in 0 .. xs.Length - 1 -> xs |> List.removeAt i }

    let shorter (cmd: Command) =
        match cmd with
        | Map(s, t, o, l, w) when l > 1 -> [ Map(s, t, o, l / 2, w); Map(s, t, 0, l, w) ] |> List.filter ((<>) cmd)
        | _ -> []

    seq {
        if c.Threads.Length > 1 then
            for ts in removeEach c.Threads do
                yield { c with Threads = ts }

        for p in removeEach c.Prefix do
            yield { c with Prefix = p }

        for i, t in List.indexed c.Threads do
            if t.Length > 1 then
                for t' in removeEach t do
                    yield
                        { c with
                            Threads = c.Threads |> List.updateAt i t' }

        for i, t in List.indexed c.Threads do
            for j, cmd in List.indexed t do
                for cmd' in shorter cmd do
                    yield
                        { c with
                            Threads = c.Threads |> List.updateAt i (t |> List.updateAt j cmd') }
    }

let arbCase (profile: Profile) =
    Arb.fromGenShrink (genCase profile, shrinkCase)
