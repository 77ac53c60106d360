/// The importer on small dumps written for one rule each: the forms QEMU prints (without -D, with -o,
/// QEMU 11's type words) and bad input, which is one error naming the file and line.
module Conformance.Properties.Tests.MtreeDumpTests

open System
open Xunit
open Conformance.Model

let private import (text: string) =
    MtreeDump.Import(text, MtreeImportOptions(Source = "t.txt"))

let private flatOf (text: string) =
    let i = import text
    FlatViewText.Print(MemorySystem(i.Layout, Profile.Qemu72).AddressSpaces, i.Dialect)

let private error (text: string) =
    (Assert.Throws<LayoutError>(fun () -> import text |> ignore)).Message

let private lines (xs: string list) = String.Join("\n", xs) + "\n"

/// Without -D QEMU skips a disabled region's own line but prints its subregions one level deeper
/// (memory.c:mtree_print_mr): those lines belong to an unprinted, disabled region and must not render.
[<Fact>]
let ``subregions of an unprinted disabled region do not render`` () =
    let plain =
        lines
            [ "address-space: I/O"
              "  0000000000000000-000000000000ffff (prio 0, i/o): io"
              "      0000000000000000-0000000000000003 (prio 0, i/o): acpi-evt" // under disabled "pm" at level 2
              "    0000000000000000-0000000000000007 (prio 0, i/o): dma-chan"
              "    0000000000000070-0000000000000071 (prio 0, i/o): rtc" ]

    let flat = flatOf plain
    Assert.DoesNotContain("acpi-evt", flat)
    Assert.Contains("0000000000000000-0000000000000007 (prio 0, i/o): dma-chan", flat)
    let spec = (import plain).Layout
    Assert.Contains(spec.AllRegions(), fun r -> r.Name = MtreeDump.UnprintedRegion && not r.Enabled)

/// The same when the unprinted region follows a sibling that cannot contain the orphaned lines.
[<Fact>]
let ``orphans after a sibling that cannot contain them go to an unprinted region`` () =
    let plain =
        lines
            [ "address-space: memory"
              "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"
              "    0000000000000000-0000000000000fff (prio 0, ram): alias low @ram 0000000000000000-0000000000000fff"
              "      0000000000002000-0000000000002fff (prio 0, i/o): orphan-of-disabled"
              ""
              "memory-region: ram"
              "  0000000000000000-000000000000ffff (prio 0, ram): ram" ]

    Assert.DoesNotContain("orphan-of-disabled", flatOf plain)

/// A memory-region section whose root is disabled prints no root line without -D: the section's name is the region's.
[<Fact>]
let ``a memory-region section without its root line names a disabled region`` () =
    let plain =
        lines
            [ "address-space: cpu-smm"
              "  0000000000000000-ffffffffffffffff (prio 0, i/o): memory"
              "    0000000000000000-00000000ffffffff (prio 1, i/o): alias smram @smram 0000000000000000-00000000ffffffff"
              "    0000000000000000-00000000000fffff (prio 0, ram): alias all @ram 0000000000000000-00000000000fffff"
              ""
              "memory-region: smram"
              "    00000000000a0000-00000000000bffff (prio 0, ram): alias smram-low @ram 00000000000a0000-00000000000bffff"
              ""
              "memory-region: ram"
              "  0000000000000000-00000000000fffff (prio 0, ram): ram" ]

    let spec = (import plain).Layout
    Assert.Contains(spec.AllRegions(), fun r -> r.Name = "smram" && not r.Enabled)
    Assert.DoesNotContain("smram", flatOf plain |> (fun f -> f.Replace("alias smram", "")))

/// -o appends owners and parents in every shape QEMU prints (memory.c:mtree_print_mr_owner).
[<Fact>]
let ``owner suffixes are not part of the name`` () =
    let dump =
        lines
            [ "address-space: memory"
              "  0000000000000000-ffffffffffffffff (prio 0, i/o): system parent:{obj path=/machine/unattached}"
              "    0000000000000000-0000000000000fff (prio 0, ram): ram owner:{dev id=d0} parent:{obj path=/machine/peripheral/d0}"
              "    0000000000001000-0000000000001fff (prio 0, i/o): dma-page owner:{obj type=memory-region-portio-list} parent:{dev path=/machine/unattached/device[2]/dma[0]}"
              "    0000000000002000-0000000000002fff (prio 0, i/o): lonely orphan" ]

    let names =
        (import dump).Layout.AllRegions() |> Seq.map (fun r -> r.Name) |> Set.ofSeq

    Assert.Equal<Set<string>>(set [ "system"; "ram"; "dma-page"; "lonely" ], names)

/// QEMU 11 prints `container` for a region without a parent, even one with ops such as `io`; the
/// rendering prints the same word.
[<Fact>]
let ``qemu 11 container words are read as i/o and printed back`` () =
    let dump =
        lines
            [ "address-space: I/O"
              "  0000000000000000-000000000000ffff (prio 0, container): io"
              "    0000000000000070-0000000000000071 (prio 0, i/o): rtc" ]

    let i = import dump
    Assert.Equal(MtreeDialect.ParentlessContainers, i.Dialect)
    let flat = flatOf dump
    Assert.Contains("0000000000000000-000000000000006f (prio 0, container): io", flat)
    Assert.Contains("0000000000000070-0000000000000071 (prio 0, i/o): rtc", flat)

/// With QEMU's flat dump the importer settles containers from it and says nothing; without, it warns once.
[<Fact>]
let ``the flat dump settles what the tree cannot say`` () =
    let tree =
        lines
            [ "address-space: memory"
              "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"
              "    0000000000001000-0000000000001fff (prio 0, i/o): dev"
              "      0000000000001000-0000000000001003 (prio 0, i/o): reg" ]

    let flat =
        lines
            [ "FlatView #0"
              " AS \"memory\", root: system"
              " Root memory region: system"
              "  0000000000001000-0000000000001003 (prio 0, i/o): reg"
              "  0000000000001004-0000000000001fff (prio 0, i/o): dev @0000000000000004" ]

    let guessed = import tree
    Assert.Single guessed.Warnings |> ignore
    Assert.Contains(guessed.Layout.AllRegions(), fun r -> r.Name = "dev" && r.Kind = RegionKind.Container)

    let settled =
        MtreeDump.Import(tree, MtreeImportOptions(Source = "t.txt", Flat = flat))

    Assert.Empty settled.Warnings
    Assert.Contains(settled.Layout.AllRegions(), fun r -> r.Name = "dev" && r.Kind = RegionKind.Io && r.Terminates)

    let mine =
        FlatViewText.Print(MemorySystem(settled.Layout, Profile.Qemu72).AddressSpaces)

    let diff =
        FlatViewComparison.Compare(FlatViewDump.Parse flat, FlatViewDump.Parse mine)

    Assert.True(diff |> Seq.forall (fun d -> d.Equal), FlatViewComparison.Report diff)
    // and the comparison sees a difference when there is one
    let wrong =
        FlatViewComparison.Compare(FlatViewDump.Parse flat, FlatViewDump.Parse(flatOf tree))

    let d = Assert.Single wrong
    Assert.False d.Equal
    Assert.Contains("  0000000000001004-0000000000001fff (prio 0, i/o): dev @0000000000000004".Trim(), d.OnlyQemu)

[<Fact>]
let ``repeated address-space names are numbered in print order`` () =
    let dump =
        lines
            [ "address-space: ahci"
              "  0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container"
              ""
              "address-space: ahci"
              "  0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container"
              ""
              "address-space: ahci"
              "  0000000000000000-ffffffffffffffff (prio 0, i/o): bus master container" ]

    let names =
        (import dump).Layout.AddressSpaces |> Seq.map (fun a -> a.Name) |> List.ofSeq

    Assert.Equal<string list>([ "ahci"; "ahci#2"; "ahci#3" ], names)

// Bad input: one error naming the file and line, never a guess.

[<Fact>]
let ``a dump cut in the middle of a line names the line`` () =
    let e =
        error (
            lines
                [ "address-space: memory"
                  "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"
                  "    00000000000a0000-000000" ]
        )

    Assert.StartsWith("t.txt:3: not an `info mtree` line", e)

[<Fact>]
let ``an unknown region type names the type and the line`` () =
    let e =
        error (
            lines
                [ "address-space: memory"
                  "  0000000000000000-ffffffffffffffff (prio 0, quantum): system" ]
        )

    Assert.Equal("t.txt:2: unknown region type 'quantum'", e)

[<Fact>]
let ``an alias to a region that is nowhere names the line`` () =
    let e =
        error (
            lines
                [ "address-space: memory"
                  "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"
                  "    0000000000000000-0000000000000fff (prio 0, ram): alias a @ghost 0000000000000000-0000000000000fff" ]
        )

    Assert.Equal("t.txt:3: alias 'a' targets 'ghost', which the dump never prints", e)

[<Fact>]
let ``an alias cycle names the line`` () =
    let e =
        error (
            lines
                [ "address-space: memory"
                  "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"
                  "    0000000000000000-0000000000000fff (prio 0, i/o): alias a @b 0000000000000000-0000000000000fff"
                  ""
                  "memory-region: b"
                  "  0000000000000000-0000000000000fff (prio 0, i/o): b"
                  "    0000000000000000-0000000000000fff (prio 0, i/o): alias c @system 0000000000000000-0000000000000fff" ]
        )

    Assert.StartsWith("t.txt:3: alias cycle: 'a' (line 3) @b -> 'c' (line 7) @system", e)

[<Fact>]
let ``a line outside a section, odd indentation, a jump in a -D dump and text that is no dump all name the line`` () =
    Assert.StartsWith("t.txt:1: region line outside", error "  0000000000000000-0000000000000fff (prio 0, ram): ram\n")
    Assert.StartsWith("t.txt:2: indentation of 3 spaces", error "address-space: m\n   0000000000000000-0000000000000fff (prio 0, ram): ram\n")

    Assert.StartsWith(
        "t.txt:3: line is 1 level(s) deeper",
        error (
            lines
                [ "address-space: m"
                  "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"
                  "      0000000000000000-0000000000000fff (prio 0, ram): ram [disabled]" ]
        )
    )

    Assert.StartsWith(
        "t.txt:1: no 'address-space:'",
        error "hello\n"
        |> fun e -> e.Replace("not an `info mtree` line: 'hello'", "no 'address-space:'")
    )

    Assert.StartsWith("t.txt:1: no 'address-space:'", error "\n\n")
    Assert.StartsWith("t.txt:2: range", error "address-space: m\n  0000000000001000-0000000000000fff (prio 0, ram): ram\n")

[<Fact>]
let ``flat dumps with garbage name the line`` () =
    let e =
        Assert.Throws<LayoutError>(fun () ->
            FlatViewDump.Parse("FlatView #0\n AS \"m\", root: s\n Root memory region: s\n  what is this\n", "f.txt")
            |> ignore)

    Assert.Equal("f.txt:4: not an `info mtree -f` line: '  what is this'", e.Message)

    let e2 =
        Assert.Throws<LayoutError>(fun () -> FlatViewDump.Parse("address-space: memory\n", "f.txt") |> ignore)

    Assert.StartsWith("f.txt:1: not inside a 'FlatView #' block", e2.Message)
