/// Differential checks against a real QEMU (category "Qemu"): the same virtio-blk request is run on QEMU
/// (legacy virtio-blk-pci over qtest) and on the model with QEMU's own q35 layout, and the observations
/// must agree. Skipped, with the reason, where no QEMU is installed — except under CI, where that fails.
module Conformance.Properties.Tests.LiveQemuTests

open System
open Xunit
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Model.Virtio
open Conformance.Qemu
open Conformance.Properties.Tests.QemuObservationTests

let private qemu () =
    match Option.ofObj (QemuBinary.Find()) with
    | Some b -> b
    | None when Environment.GetEnvironmentVariable "CI" = "true" -> failwith "CI must install QEMU: apt-get install -y --no-install-recommends qemu-system-x86"
    | None ->
        Skip.If(true, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); set QEMU=/path/to/qemu-system-x86_64 for another build")
        failwith "unreachable"

/// What a request leaves behind, observed the same way on both sides.
type Observation = { Used: (uint32 * uint32) list; Broken: bool; Data: byte[]; Status: byte }

/// Runs header (RAM) -> data (addr, len, device-writable) -> status on QEMU.
let private onQemu (binary: QemuBinary) (addr: uint64) (len: uint32) =
    use q = new QemuProcess(binary, VirtioContext.InitialDisk 2048)
    let blk = LegacyVirtioBlk(q, 0x100000UL)
    blk.Initialise()
    let header = Array.zeroCreate<byte> 16
    header.[8] <- 1uy   // sector 1, type IN
    q.Qtest.Write(Header, ReadOnlySpan header)
    blk.WriteDescriptor(0, VringDesc(Header, 16u, N, 1us))
    blk.WriteDescriptor(1, VringDesc(addr, len, W ||| N, 2us))
    blk.WriteDescriptor(2, VringDesc(Status, 1u, W, 0us))
    blk.Publish 0us
    blk.Kick()
    let completed = blk.WaitForUsed(1us, TimeSpan.FromSeconds 3.0)
    { Used = (if completed then [ (let struct (i, l) = blk.UsedElement 0 in (i, l)) ] else [])
      Broken = blk.Broken()
      Data = q.Qtest.Read(addr, int (min len 4096u))
      Status = q.Qtest.Read(Status, 1).[0] }, q.Stderr()

let private onModel (addr: uint64) (len: uint32) =
    let run = readInto addr len
    let struct (_, usedList) = struct (0, snd (used run))
    { Used = usedList |> List.map (fun struct (i, l) -> i, l)
      Broken = run.Virtio.Device.Broken
      Data = read run addr (int (min len 4096u))
      Status = (read run Status 1).[0] }, String.Join("\n", run.Virtio.Device.Errors)

[<SkippableTheory; Trait("Category", "Qemu")>]
[<InlineData(0x300000UL, 512u)>]          // RAM
[<InlineData(0xff000000UL, 512u)>]        // pc-testdev MMIO: bounce, written back at unmap
[<InlineData(0xff000800UL, 4096u)>]       // MMIO, one page crossing a page boundary
[<InlineData(0xff000000UL, 8192u)>]       // two bounce pages at once: QEMU 7.2 breaks the device
let ``QEMU and the model agree on a virtio-blk read`` (addr: uint64, len: uint32) =
    let binary = qemu ()
    let real, realErrors = onQemu binary addr len
    let model, modelErrors = onModel addr len
    Assert.Equal<(uint32 * uint32) list>(real.Used, model.Used)
    Assert.Equal(real.Broken, model.Broken)
    Assert.Equal<byte[]>(real.Data, model.Data)
    if not real.Used.IsEmpty then Assert.Equal(real.Status, model.Status)
    if model.Broken then Assert.Contains(modelErrors, realErrors)

[<SkippableFact; Trait("Category", "Qemu")>]
let ``no QEMU process outlives its test`` () =
    let binary = qemu ()
    let q = new QemuProcess(binary, VirtioContext.InitialDisk 16)
    Assert.False q.HasExited
    q.Dispose()
    Assert.Equal(0, QemuProcess.LiveCount)
