/// The model imports real `info mtree` dumps of QEMU 7.2, 10.0 and 11.x (fixtures/layouts/qemu-*/, made by
/// dump-layouts.sh) in every form a user may paste — plain, -D, -o — and renders them exactly as that
/// QEMU's `info mtree -f` does, with no options; with QEMU's flat dump beside them, `layout --flat`
/// compares equal for every address space.
module Conformance.Properties.Tests.LayoutFixtureTests

open System
open System.IO
open System.Text.RegularExpressions
open Xunit
open Conformance.Model
open Conformance.Properties.Tests.TestSupport

/// QEMU prints flat views in GHashTable order and each view's address spaces in creation order; the
/// tree dump cannot tell either. So compare views as a set, each with its AS lines sorted, dropping
/// the "FlatView #n" numbering and the model's "#n" on repeated address-space names, and otherwise only
/// normalising whitespace. (Independent of FlatViewComparison, which `layout --flat` uses.)
let normalise (text: string) =
    text.Replace("\r\n", "\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun block ->
        let lines =
            block.Split('\n')
            |> Array.map (fun l -> Regex.Replace(Regex.Replace(l.Trim(), @"\s+", " "), "^AS \"(.*?)#\\d+\"", "AS \"$1\""))
            |> Array.filter (fun l -> l <> "" && not (l.StartsWith "FlatView #"))

        let spaces = lines |> Array.filter (fun l -> l.StartsWith "AS ") |> Array.sort
        String.Join("\n", Array.append spaces (lines |> Array.filter (fun l -> not (l.StartsWith "AS ")))))
    |> Array.sort

let layoutsDir = fromRoot "fixtures/layouts"

let versions () =
    Directory.GetDirectories(layoutsDir, "qemu-*")
    |> Array.map Path.GetFileName
    |> Array.sort

/// The tree forms dump-layouts.sh writes: plain `info mtree`, `-D` and `-o -D`.
let forms = [ "mtree"; "mtree-D"; "mtree-o" ]

let configs version =
    Directory.GetFiles(Path.Combine(layoutsDir, version), "*.flat.txt")
    |> Array.map (fun f -> Path.GetFileName(f).Replace(".flat.txt", ""))
    |> Array.sort

let file version config (kind: string) =
    Path.Combine(layoutsDir, version, $"{config}.{kind}.txt")

/// A dump imported with no options, as a user pastes it.
let import version config form =
    let path = file version config form
    MtreeDump.Import(File.ReadAllText path, MtreeImportOptions(Source = Path.GetRelativePath(layoutsDir, path)))

let render (imported: MtreeImport) =
    FlatViewText.Print(MemorySystem(imported.Layout, Profile.Qemu72).AddressSpaces, imported.Dialect)

/// The machine of the differential and of most tests: q35 with pc-testdev, QEMU 7.2, `-D`.
let q35 () =
    (import "qemu-7.2" "q35" "mtree-D").Layout

type LayoutFixtureTests() =
    static member Dumps: obj[] seq =
        seq {
            for v in versions () do
                for c in configs v do
                    for f in forms do
                        if File.Exists(file v c f) then
                            yield [| box v; box c; box f |]
        }

    /// The configurations the layouts issue names, in every QEMU version committed, in every form.
    [<Fact>]
    member _.every_version_has_every_configuration_in_every_form() =
        let required =
            [ "q35"
              "pc"
              "microvm"
              "q35-two-ahci"
              "q35-two-virtio-blk"
              "q35-two-virtio-net"
              "q35-vga"
              "pc-vga"
              "q35-nvme"
              "q35-virtio-scsi"
              "q35-4g"
              "pc-4g"
              "pc-3584m"
              "q35-smm-off"
              "pc-smm-off"
              "q35-virtio-blk"
              "q35-virtio-blk-modern" ]

        let vs = versions ()

        for major in [ "qemu-7.2"; "qemu-10.0" ] do
            Assert.Contains(major, vs)

        Assert.Contains(vs, fun v -> v.StartsWith "qemu-11.")

        for v in vs do
            for c in required do
                for kind in "flat" :: forms do
                    Assert.True(File.Exists(file v c kind), $"missing {v}/{c}.{kind}.txt")

    [<Theory>]
    [<MemberData(nameof LayoutFixtureTests.Dumps)>]
    member _.dump_renders_as_qemu_renders_it_with_no_options(version: string, config: string, form: string) =
        let imported = import version config form
        let theirs = normalise (File.ReadAllText(file version config "flat"))
        Assert.NotEmpty theirs
        Assert.Equal<string>(theirs, normalise (render imported))

    [<Theory>]
    [<MemberData(nameof LayoutFixtureTests.Dumps)>]
    member _.with_qemus_flat_dump_every_address_space_compares_equal(version: string, config: string, form: string) =
        let flat = File.ReadAllText(file version config "flat")

        let imported =
            MtreeDump.Import(File.ReadAllText(file version config form), MtreeImportOptions(Source = config, Flat = flat))

        Assert.Empty imported.Warnings

        let differences =
            FlatViewComparison.Compare(FlatViewDump.Parse(flat, "qemu"), FlatViewDump.Parse(render imported, "model"))

        Assert.True(differences |> Seq.forall (fun d -> d.Equal), FlatViewComparison.Report differences)
        // every address space QEMU lists is compared, once per repetition of its name
        let spaces = FlatViewDump.Parse(flat, "qemu") |> Seq.sumBy (fun v -> v.Spaces.Count)
        Assert.Equal(spaces, differences.Count)

    /// QEMU 11 prints `container` for regions without a parent, `io` included, which has ops: the word
    /// settles nothing, and the rendering must print it where QEMU does.
    [<Fact>]
    member _.qemu_11_type_words_are_read_and_printed_as_qemu_11_prints_them() =
        let v = versions () |> Array.find (fun v -> v.StartsWith "qemu-11.")
        let imported = import v "q35" "mtree-D"
        Assert.Equal(MtreeDialect.ParentlessContainers, imported.Dialect)
        Assert.Contains(imported.Layout.AllRegions(), fun r -> r.Name = "io" && r.Kind = RegionKind.Io && r.Terminates)
        Assert.Contains(imported.Layout.AllRegions(), fun r -> r.Name = "pci" && r.Kind = RegionKind.Container)
        Assert.Contains("(prio 0, container): io @", render imported)
        Assert.Equal(MtreeDialect.IoOnly, (import "qemu-7.2" "q35" "mtree-D").Dialect)

    /// Without the flat dump the importer says, in one line, what it assumed.
    [<Fact>]
    member _.an_import_without_the_flat_dump_names_what_it_assumed() =
        let imported = import "qemu-10.0" "q35" "mtree"
        let warning = Assert.Single imported.Warnings
        Assert.Contains("io, rtc terminate", warning)
        Assert.Contains("--flat", warning)

    /// Two devices of one type: QEMU's repeated address-space names become name, name#2, ... in print order.
    [<Fact>]
    member _.repeated_address_space_names_get_stable_unique_names() =
        for v in versions () do
            let names =
                (import v "q35-two-ahci" "mtree-D").Layout.AddressSpaces
                |> Seq.map (fun a -> a.Name)
                |> List.ofSeq

            Assert.Contains("ich9-ahci", names)
            Assert.Contains("ich9-ahci#2", names)
            Assert.Equal(names.Length, (Set.ofList names).Count)
            Assert.Contains("AS \"ich9-ahci#2\"", render (import v "q35-two-ahci" "mtree-D"))

    /// The importer keeps what the dump shows: disabled regions, negative priorities, aliases with offsets.
    [<Fact>]
    member _.import_keeps_disabled_regions_priorities_and_alias_offsets() =
        let all = q35().AllRegions() |> List.ofSeq
        Assert.Contains(all, fun r -> not r.Enabled && r.Name = "smbase-blackhole")
        Assert.Contains(all, fun r -> r.Name = "pci" && r.Priority = -1)

        Assert.Contains(
            all,
            fun r ->
                r.Kind = RegionKind.Alias
                && r.Name = "isa-bios"
                && r.AliasTarget = "pc.bios"
                && r.AliasOffset = 0x20000UL
        )

        Assert.Contains(all, fun r -> r.Kind = RegionKind.Io && r.Name = "io" && r.Terminates)

    /// A translation through the imported q35 layout: pc-testdev's MMIO at 0xff000000, RAM below 0xa0000,
    /// the BIOS window at 0xe0000 (alias into pc.bios at 0x20000).
    [<Fact>]
    member _.q35_translations() =
        let system = MemorySystem(q35 (), Profile.Qemu72)
        let view = system.Space("memory").View

        let at (a: uint64) =
            let s = view.Translate a in s.Region.Name, s.Xlat

        Assert.Equal(("pc-testdev-iomem", 0x10UL), at 0xff000010UL)
        Assert.Equal(("pc.ram", 0x1234UL), at 0x1234UL)
        Assert.Equal(("pc.bios", 0x20010UL), at 0xe0010UL)
        // 0xa0000: the smram-region alias shows pci there, which has nothing at that address, so RAM shows through
        Assert.Equal(("pc.ram", 0xa0000UL), at 0xa0000UL)
        Assert.True(view.Translate(0x10000000UL).IsUnassigned)

    [<Fact>]
    member _.malformed_dump_reports_the_line() =
        let e =
            Assert.Throws<LayoutError>(fun () -> MtreeDump.Parse("address-space: memory\n  garbage here\n", "bad.txt") |> ignore)

        Assert.StartsWith("bad.txt:2", e.Message)
