/// Several virtio devices, one thread each, popping and pushing chains whose buffers sit in RAM and in
/// MMIO at the same time: they contend for bounce space through the shared memory system. Whatever the
/// interleaving, every popped element is pushed once, a device that broke did so for the one reason
/// contention gives (virtqueue_map_desc: "bogus descriptor or out of resources"), and no mapping, bounce
/// byte or reference is left behind.
module Conformance.Properties.ParallelVirtqueues

open System
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Model.Virtio
open Conformance.Model.Scenarios
open Conformance.Properties.ParallelCommands
open Conformance.Properties.Verdict

type Buffer =
    { Target: Target
      Offset: int
      Length: int
      DeviceWrites: bool }

type QueuesCase =
    { Profile: Profile
      Devices: Buffer list list list }

/// Ring layout inside each device's RAM slice; buffers in RAM start above it.
let QueueSize = 16
/// Not at the slice's start: device 0's slice starts at guest address 0, and a queue whose descriptor table is
/// at 0 has no ring caches in QEMU (virtio.c:virtio_init_region_cache), so it would never pop anything.
let DescOffset = 0x800
let AvailOffset = 0x200
let UsedOffset = 0x400
let RamBufferBase = 0x1000

/// Device `d`'s RAM slice, where its rings live.
let sliceOf (d: int) = RamBase + uint64 (d * SliceSize)

/// The descriptors device `d`'s driver writes for its chains, one after another from index 0 (each chained
/// to the next by VRING_DESC_F_NEXT), and the heads it publishes.
let descriptorsOf (d: int) (chains: Buffer list list) : DescriptorEntry list * uint16 list =
    let slice = sliceOf d

    let entries, heads, _ =
        chains
        |> List.fold
            (fun (entries, heads, next) chain ->
                let chainEntries =
                    chain
                    |> List.mapi (fun k b ->
                        let addr =
                            (if b.Target = Ram then
                                 slice + uint64 RamBufferBase
                             else
                                 MmioBase + uint64 (d * SliceSize))
                            + uint64 b.Offset

                        let flags =
                            (if b.DeviceWrites then
                                 VirtioConstants.DescFlagWrite
                             else
                                 0us)
                            ||| (if k < chain.Length - 1 then
                                     VirtioConstants.DescFlagNext
                                 else
                                     0us)

                        DescriptorEntry(next + k, addr, uint32 b.Length, flags, uint16 (next + k + 1)))

                entries @ chainEntries, heads @ [ uint16 next ], next + chain.Length)
            ([], [], 0)

    entries, heads

let render (c: QueuesCase) =
    [ yield sprintf "profile %A" c.Profile
      for i, chains in List.indexed c.Devices do
          yield sprintf "device %d:" (i + 1)

          for chain in chains do
              yield
                  "  chain "
                  + String.Join(
                      ", ",
                      chain
                      |> List.map (fun b ->
                          sprintf "%s %s +0x%x len %d" (if b.DeviceWrites then "in" else "out") (if b.Target = Ram then "ram" else "mmio") b.Offset b.Length)
                  ) ]

let genCase (profile: Profile) : Gen<QueuesCase> =
    let genBuffer =
        gen {
            let! target = Gen.frequency [ 2, Gen.constant Mmio; 1, Gen.constant Ram ]

            let room =
                if target = Ram then
                    SliceSize - RamBufferBase
                else
                    SliceSize

            let! offset = Gen.frequency [ 2, Gen.constant 0; 1, Gen.choose (0, room / 2) ]
            let! length = Gen.frequency [ 2, Gen.choose (1, 64); 1, Gen.choose (512, 4096) ]
            let! writes = Gen.elements [ true; false ]

            return
                { Target = target
                  Offset = offset
                  Length = min length (room - offset)
                  DeviceWrites = writes }
        }
    // VIRTIO 1.2 §2.7.4.2: device-readable descriptors come before device-writable ones
    let genChain =
        Gen.choose (1, 3)
        |> Gen.bind (fun k -> Gen.listOfLength k genBuffer)
        |> Gen.map (List.sortBy (fun b -> b.DeviceWrites))

    gen {
        let! devices = Gen.choose (2, 3)
        let! chains = Gen.listOfLength devices (Gen.choose (1, 3) |> Gen.bind (fun k -> Gen.listOfLength k genChain))
        return { Profile = profile; Devices = chains }
    }

let shrinkCase (c: QueuesCase) : QueuesCase seq =
    seq {
        if c.Devices.Length > 2 then
            for i in 0 .. c.Devices.Length - 1 do
                yield
                    { c with
                        Devices = List.removeAt i c.Devices }

        for i, chains in List.indexed c.Devices do
            if chains.Length > 1 then
                for j in 0 .. chains.Length - 1 do
                    yield
                        { c with
                            Devices = c.Devices |> List.updateAt i (List.removeAt j chains) }

            for j, chain in List.indexed chains do
                if chain.Length > 1 then
                    for k in 0 .. chain.Length - 1 do
                        yield
                            { c with
                                Devices = c.Devices |> List.updateAt i (List.updateAt j (List.removeAt k chain) chains) }
    }

let arbCase profile =
    Arb.fromGenShrink (genCase profile, shrinkCase)

type private DeviceRun =
    { Device: VirtioDevice
      Queue: VirtQueue
      Chains: int
      mutable Popped: int
      mutable Pushed: int }

/// Sets the devices up (sequentially, as the guest would before kicking), then runs one thread per device.
let private runOnce (target: Conformance.Model.Targets.IInProcessTarget) (c: QueuesCase) (controlled: (int * int) option) =
    let sys = target.NewSystem(layout, c.Profile)
    let space = sys.Space "memory"

    let devices =
        c.Devices
        |> List.mapi (fun i chains ->
            let d = i + 1
            let slice = sliceOf d

            let driver =
                SplitRingDriver(sys, space, QueueSize, slice + uint64 DescOffset, slice + uint64 AvailOffset, slice + uint64 UsedOffset)

            driver.ClearRings(false)
            let entries, heads = descriptorsOf d chains

            for e in entries do
                driver.WriteDescriptor(e.Index, VringDesc(e.Addr, e.Len, e.Flags, e.Next))

            driver.Publish heads
            let dev = target.NewVirtioDevice(sys, space, 1, 0UL)
            dev.SetupQueue(0, QueueSize, driver.DescAddr, driver.AvailAddr, driver.UsedAddr)

            { Device = dev
              Queue = dev.Queues.[0]
              Chains = chains.Length
              Popped = 0
              Pushed = 0 })

    let refsBefore = sys.Owners |> Seq.map (fun o -> o.Name, o.RefCount) |> Map.ofSeq

    let body (r: DeviceRun) () =
        let mutable go = true

        while go do
            let p = r.Device.Pop r.Queue

            match Option.ofObj p.Element with
            | Some elem ->
                r.Popped <- r.Popped + 1
                r.Device.Push(r.Queue, elem, uint32 elem.InBytes)
                r.Pushed <- r.Pushed + 1
            | None -> go <- false

    let ending =
        match controlled with
        | Some(seed, pct) ->
            let s = ControlledScheduler.Scheduler(seed, pct, 100_000, ignore)
            sys.Interleaver <- s
            let run = s.Run(devices |> List.map body)
            sys.Interleaver <- null

            match run.Ending with
            | ControlledScheduler.Completed -> None
            | other -> Some(sprintf "%A" other)
        | None ->
            let errors = Collections.Concurrent.ConcurrentQueue<string>()

            let bodies =
                devices
                |> List.map (fun r () ->
                    try
                        body r ()
                    with e ->
                        errors.Enqueue(sprintf "%s: %s" (e.GetType().Name) e.Message))

            if not (ThreadGang.run bodies (TimeSpan.FromSeconds 10.0)) then
                Some "a device thread did not finish within 10 s"
            else
                Seq.tryHead errors

    sys, devices, refsBefore, ending

/// P24: element conservation and mapping balance for devices running in parallel.
let parallelQueues (target: Conformance.Model.Targets.IInProcessTarget) (c: QueuesCase) : CaseResult =
    let labels =
        Collections.Generic.HashSet<string>([ sprintf "%d devices" c.Devices.Length ])

    let attempts = ConcurrencyProperties.attemptsOf (render c)
    let mutable violation = None
    use e = attempts.GetEnumerator()

    while violation.IsNone && e.MoveNext() do
        let schedule, controlled = e.Current
        let sys, devices, refsBefore, ending = runOnce target c controlled

        let problems =
            [ match ending with
              | Some why -> yield sprintf "the run did not complete: %s" why
              | None -> ()
              for i, r in List.indexed devices do
                  let d = i + 1

                  if r.Device.Broken then
                      labels.Add "a device broke for lack of bounce space" |> ignore

                      for err in r.Device.Errors do
                          if err <> "virtio: bogus descriptor or out of resources" then
                              yield sprintf "device %d broke for another reason: %s" d err
                  elif r.Pushed <> r.Chains then
                      yield sprintf "device %d completed %d of its %d chains without breaking" d r.Pushed r.Chains

                  if r.Popped <> r.Pushed then
                      yield sprintf "device %d popped %d elements but pushed %d" d r.Popped r.Pushed

                  if r.Queue.InUse <> 0 then
                      yield sprintf "device %d: inuse is %d after every element was pushed" d r.Queue.InUse

                  if int r.Queue.UsedIdx <> r.Pushed then
                      yield sprintf "device %d: used.idx %d for %d pushes" d r.Queue.UsedIdx r.Pushed
              if sys.LiveMappings.Count > 0 then
                  yield sprintf "%d mappings still live: %s" sys.LiveMappings.Count (String.Join("; ", sys.LiveMappings))
              if
                  sys.BounceBuffersAllocated <> 0
                  || sys.GlobalBounceInUse
                  || sys.AddressSpaces |> Seq.exists (fun a -> a.BounceBufferSize <> 0UL)
              then
                  yield "bounce space still taken after every element was released"
              for o in sys.Owners do
                  if o.RefCount <> refsBefore.[o.Name] then
                      yield sprintf "%s holds %d references, %d before the devices ran" o.Name o.RefCount refsBefore.[o.Name] ]

        if devices |> List.forall (fun r -> not r.Device.Broken) then
            labels.Add "every device completed every chain" |> ignore

        if
            devices |> List.exists (fun r -> r.Pushed > 0)
            && c.Devices |> List.exists (List.exists (List.exists (fun b -> b.Target = Mmio)))
        then
            labels.Add "MMIO buffers pushed while other devices ran" |> ignore

        if not problems.IsEmpty then
            violation <- Some(String.Join("\n", sprintf "%s:" schedule :: (problems |> List.map ((+) "  "))))

    judged (List.ofSeq labels) (violation |> Option.map Violated |> Option.toList)
