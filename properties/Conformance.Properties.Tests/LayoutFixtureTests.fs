/// The model imports real `info mtree` dumps and renders them exactly as QEMU's `info mtree -f` does.
module Conformance.Properties.Tests.LayoutFixtureTests

open System
open System.IO
open System.Text.RegularExpressions
open Xunit
open Conformance.Model
open Conformance.Properties.Tests.TestSupport

/// QEMU prints flat views in GHashTable order and each view's address spaces in creation order; the
/// tree dump cannot tell either. So compare views as a set, each with its AS lines sorted, dropping
/// the "FlatView #n" numbering, and otherwise only normalising whitespace.
let normalise (text: string) =
    text.Replace("\r\n", "\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun block ->
        let lines =
            block.Split('\n')
            |> Array.map (fun l -> Regex.Replace(l.Trim(), @"\s+", " "))
            |> Array.filter (fun l -> l <> "" && not (l.StartsWith "FlatView #"))
        let spaces = lines |> Array.filter (fun l -> l.StartsWith "AS ") |> Array.sort
        String.Join("\n", Array.append spaces (lines |> Array.filter (fun l -> not (l.StartsWith "AS ")))))
    |> Array.sort

let machines () =
    Directory.GetFiles(fromRoot "fixtures/layouts", "*.mtree.txt")
    |> Array.map (fun f -> Path.GetFileName(f).Replace(".mtree.txt", ""))
    |> Array.sort

let load machine =
    let dir = fromRoot "fixtures/layouts"
    let hints = Path.Combine(dir, machine + ".terminates.txt")
    let terminating = if File.Exists hints then File.ReadAllLines hints |> Array.filter (fun l -> l.Trim() <> "") else [||]
    MtreeDump.Parse(File.ReadAllText(Path.Combine(dir, machine + ".mtree.txt")), terminating, machine + ".mtree.txt"),
    File.ReadAllText(Path.Combine(dir, machine + ".flat.txt"))

type LayoutFixtureTests() =
    static member Machines: obj[] seq = machines () |> Seq.map (fun m -> [| box m |])

    [<Fact>]
    member _.there_are_dumps_of_q35_and_pc() =
        let ms = machines ()
        Assert.Contains("q35", ms)
        Assert.Contains("pc", ms)

    [<Theory>]
    [<MemberData(nameof LayoutFixtureTests.Machines)>]
    member _.model_flat_view_equals_qemus(machine: string) =
        let spec, flat = load machine
        let system = MemorySystem(spec, Profile.Qemu72)
        let mine = normalise (FlatViewText.Print system.AddressSpaces)
        let theirs = normalise flat
        Assert.Equal<string>(theirs, mine)

    /// The importer keeps what the dump shows: disabled regions, negative priorities, aliases with offsets.
    [<Fact>]
    member _.import_keeps_disabled_regions_priorities_and_alias_offsets() =
        let spec, _ = load "q35"
        let all = spec.AllRegions() |> List.ofSeq
        Assert.Contains(all, fun r -> not r.Enabled && r.Name = "smbase-blackhole")
        Assert.Contains(all, fun r -> r.Name = "pci" && r.Priority = -1)
        Assert.Contains(all, fun r -> r.Kind = RegionKind.Alias && r.Name = "isa-bios" && r.AliasTarget = "pc.bios" && r.AliasOffset = 0x20000UL)
        Assert.Contains(all, fun r -> r.Kind = RegionKind.Io && r.Name = "io" && r.Terminates)

    /// A translation through the imported q35 layout: pc-testdev's MMIO at 0xff000000, RAM below 0xa0000,
    /// the BIOS window at 0xe0000 (alias into pc.bios at 0x20000).
    [<Fact>]
    member _.q35_translations() =
        let spec, _ = load "q35"
        let system = MemorySystem(spec, Profile.Qemu72)
        let view = system.Space("memory").View
        let at (a: uint64) = let s = view.Translate a in s.Region.Name, s.Xlat
        Assert.Equal(("pc-testdev-iomem", 0x10UL), at 0xff000010UL)
        Assert.Equal(("pc.ram", 0x1234UL), at 0x1234UL)
        Assert.Equal(("pc.bios", 0x20010UL), at 0xe0010UL)
        // 0xa0000: the smram-region alias shows pci there, which has nothing at that address, so RAM shows through
        Assert.Equal(("pc.ram", 0xa0000UL), at 0xa0000UL)
        Assert.True(view.Translate(0x10000000UL).IsUnassigned)

    [<Fact>]
    member _.malformed_dump_reports_the_line() =
        let e = Assert.Throws<LayoutError>(fun () -> MtreeDump.Parse("address-space: memory\n  garbage here\n", null, "bad.txt") |> ignore)
        Assert.StartsWith("bad.txt:2", e.Message)
