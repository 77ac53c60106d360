/// Concurrency cases survive a trip through their file format, for every workload (P20-P24).
module Conformance.Properties.Tests.ConcurrentCaseFileTests

open FsCheck
open FsCheck.FSharp
open global.Xunit
open Conformance.Model
open Conformance.Properties
open Conformance.Properties.ConcurrentCaseFile

let private roundTrips (property: string) (gen: Gen<ConcurrentCase>) =
    for c in Gen.sample 50 gen do
        let text = write property (Some "d") c
        let p, d, back = read text
        Assert.Equal(property, p)
        Assert.Equal(Some "d", d)
        Assert.Equal(c, back)
        Assert.True(isConcurrent text)

[<Fact>]
let ``generated cases of every workload read back as written`` () =
    for profile in [ Profile.Qemu72; Profile.Qemu92 ] do
        roundTrips "bounce-budget" ((ParallelCases.arbCase profile).Generator |> Gen.map Commands)
        roundTrips "no-lost-wakeup" ((WakeupWorkload.arbCase profile).Generator |> Gen.map Wakeup)
        roundTrips "parallel-virtqueues" ((ParallelVirtqueues.arbCase profile).Generator |> Gen.map Queues)

[<Fact>]
let ``a scenario is not a concurrency case`` () =
    Assert.False(isConcurrent (System.IO.File.ReadAllText(TestSupport.fromRoot "fixtures/findings/F-DMA-1.json")))
    Assert.False(isConcurrent "not json")
