/// The model's shared bookkeeping under two threads at once. QEMU sets dirty bits atomically
/// (include/exec/ram_addr.h:cpu_physical_memory_set_dirty_range uses bitmap_set_atomic), so direct write
/// unmaps on different threads never lose a dirty page. The concurrency properties give every thread its own
/// few bytes and judge against one sequential order; they rarely have two threads inside the dirty bitmap at
/// the same instant. These tests put them there on purpose, many times, so an unsynchronised bitmap shows.
module Conformance.Properties.Tests.SharedBookkeepingTests

open System.Threading
open System.Threading.Tasks
open Xunit
open Conformance.Model
open Conformance.Properties.LayoutBuilding
open Conformance.Properties.Oracle

let private pageSize = uint64 ProfileFacts.TargetPageSize
let private pagesPerThread = 4096UL
let private pagesPerUnmap = 64UL

/// Runs `a` and `b` on two threads released at the same instant and returns their results; fails when they
/// have not finished within a minute (a corrupted hash set can loop for ever; the work takes milliseconds).
let private atOnce (a: unit -> 'T) (b: unit -> 'T) : 'T[] =
    use start = new Barrier(2)

    let run f () =
        start.SignalAndWait()
        f ()

    let threads =
        [| Task.Factory.StartNew(run a, TaskCreationOptions.LongRunning)
           Task.Factory.StartNew(run b, TaskCreationOptions.LongRunning) |]

    Assert.True(Task.WaitAll(threads |> Array.map (fun t -> t :> Task), 60_000), "the two threads did not finish within a minute")
    threads |> Array.map (fun t -> t.Result)

/// Two threads, each write-mapping and unmapping its own half of a RAM block, 64 pages at a time, started
/// together. Returns the memory system once both are done.
let private writeHalvesAtOnce profile =
    let ram = Spec.Region("ram", RegionKind.Ram, u128 (2UL * pagesPerThread * pageSize))

    let s = MemorySystem(Spec.OneSpace [ ram ], profile)
    let mem = s.Space "memory"

    let half (first: uint64) () =
        let mutable page = first

        while page < first + pagesPerThread do
            let len = pagesPerUnmap * pageSize
            let r = s.Map(mem, page * pageSize, len, true)
            Assert.Equal(len, r.Length)
            s.Unmap(r.Mapping, len) |> ignore
            page <- page + pagesPerUnmap

    atOnce (half 0UL) (half pagesPerThread) |> ignore
    s

[<Theory>]
[<InlineData(Profile.Qemu72)>]
[<InlineData(Profile.Qemu92)>]
let ``direct write unmaps on two threads at once dirty every page once, in every client (bitmap_set_atomic)`` (profile: Profile) =
    let allPages = [ 0UL .. 2UL * pagesPerThread - 1UL ]

    for _ in 1..40 do
        let s = writeHalvesAtOnce profile
        let ram = s.Regions |> Seq.find (fun r -> r.Name = "ram")
        let clients = s.ActiveClients ram
        Assert.NotEmpty clients

        for client in clients do
            Assert.Equal<uint64 list>(allPages, s.Dirty.Pages client |> Seq.sort |> List.ofSeq)

        // the journal of pages going from clean to dirty: each (client, page) exactly once
        let journal = s.Dirty.NewlyDirtyJournal |> List.ofSeq
        Assert.Equal(clients.Count * allPages.Length, journal.Length)
        Assert.Equal(journal.Length, journal |> List.distinct |> List.length)

/// The model's record of live mappings (its own: QEMU keeps none, the caller holds the pointer) is what
/// "nothing stays mapped" is judged on, so two threads mapping at once must both be recorded.
[<Fact>]
let ``maps on two threads at once are all recorded as live`` () =
    let mapsPerThread = 20_000

    for _ in 1..20 do
        let ram = Spec.Region("ram", RegionKind.Ram, u128 (uint64 (2 * mapsPerThread)))

        let s = MemorySystem(Spec.OneSpace [ ram ], Profile.Qemu92)
        let mem = s.Space "memory"

        let maps (first: uint64) () =
            [| for i in 0UL .. uint64 mapsPerThread - 1UL do
                   let r = s.Map(mem, first + i, 1UL, false)
                   Assert.True r.Succeeded
                   r.Mapping |]

        let expected =
            atOnce (maps 0UL) (maps (uint64 mapsPerThread))
            |> Array.concat
            |> Array.map (fun m -> m.Addr)
            |> Array.sort

        let live = s.LiveMappings |> Seq.map (fun m -> m.Addr) |> Array.ofSeq |> Array.sort
        Assert.Equal<uint64[]>(expected, live)
