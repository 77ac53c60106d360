/// Layouts QEMU could not build are refused with the path of the offending element and the reason, before
/// anything runs (memory_region_init and friends would abort or assert on them).
module Conformance.Properties.Tests.LayoutErrorTests

open System
open Xunit
open Conformance.Model
open Conformance.Properties.LayoutBuilding
open Conformance.Properties.Oracle

let private system (children: RegionSpec list) =
    Spec.Copy(Spec.Region("system", RegionKind.Container, two64), subregions = children)

let private ram name size =
    Spec.Region(name, RegionKind.Ram, u128 size)

let private layout (roots: RegionSpec list) (spaces: AddressSpaceSpec list) =
    LayoutSpec(Array.ofList roots, Array.ofList spaces, DirtyLogging.Default)

let private memory = AddressSpaceSpec("memory", "system")

let private refused (spec: LayoutSpec) (path: string) (reason: string) =
    let e =
        Assert.Throws<LayoutError>(fun () -> MemorySystem(spec, Profile.Qemu72) |> ignore)

    Assert.Equal(path, e.Path)
    Assert.Contains(reason, e.Message)

[<Fact>]
let ``an address space declared twice`` () =
    refused (layout [ system [ ram "ram" 0x1000UL ] ] [ memory; memory ]) "$.layout.addressSpaces[1].name" "address space 'memory' is declared twice"

[<Fact>]
let ``a root that names no region`` () =
    refused (layout [ system [] ] [ AddressSpaceSpec("memory", "nowhere") ]) "$.layout.addressSpaces[0].root" "no region named 'nowhere'"

[<Fact>]
let ``a root name carried by two regions`` () =
    let twice =
        [ Spec.Copy(Spec.Region("box", RegionKind.Container, u128 0x10000UL), subregions = [ ram "dup" 0x1000UL ])
          Spec.Copy(Spec.Region("box2", RegionKind.Container, u128 0x10000UL, 0x10000UL), subregions = [ ram "dup" 0x1000UL ]) ]

    refused
        (layout [ system twice ] [ memory; AddressSpaceSpec("dev", "dup") ])
        "$.layout.addressSpaces[1].root"
        "region name 'dup' is ambiguous (2 regions carry it)"

[<Fact>]
let ``an alias cycle`` () =
    let a = Spec.Copy(Spec.Region("a", RegionKind.Alias, u128 0x1000UL), target = "b")
    let b = Spec.Copy(Spec.Region("b", RegionKind.Alias, u128 0x1000UL), target = "a")

    let e =
        Assert.Throws<LayoutError>(fun () -> MemorySystem(layout [ system [ a ]; b ] [ memory ], Profile.Qemu72) |> ignore)

    Assert.Contains("alias cycle through", e.Message)

[<Fact>]
let ``an empty region, one over 2^64 bytes, and RAM over 2^48 bytes`` () =
    let e =
        Assert.Throws<LayoutError>(fun () ->
            MemorySystem(layout [ system [ Spec.Region("nothing", RegionKind.Io, UInt128.Zero) ] ] [ memory ], Profile.Qemu72)
            |> ignore)

    Assert.EndsWith(".size", e.Path)
    Assert.Contains("a region cannot be empty", e.Message)

    let e =
        Assert.Throws<LayoutError>(fun () ->
            MemorySystem(layout [ system [ Spec.Region("huge", RegionKind.Io, two64 + UInt128.One) ] ] [ memory ], Profile.Qemu72)
            |> ignore)

    Assert.Contains("a region cannot exceed 2^64 bytes", e.Message)

    let e =
        Assert.Throws<LayoutError>(fun () ->
            MemorySystem(layout [ system [ Spec.Region("big", RegionKind.Ram, UInt128(0UL, 1UL <<< 49)) ] ] [ memory ], Profile.Qemu72)
            |> ignore)

    Assert.EndsWith(".size", e.Path)
    Assert.Contains("RAM larger than 2^48 bytes is not modelled", e.Message)
    // 2^48 bytes exactly is a layout the model builds (sparse storage)
    MemorySystem(layout [ system [ Spec.Region("edge", RegionKind.Ram, UInt128(0UL, 1UL <<< 48)) ] ] [ memory ], Profile.Qemu72)
    |> ignore

[<Fact>]
let ``an alias without a target, a target on a non-alias, subregions under RAM`` () =
    let e =
        Assert.Throws<LayoutError>(fun () ->
            MemorySystem(layout [ system [ Spec.Region("alias", RegionKind.Alias, u128 0x1000UL) ] ] [ memory ], Profile.Qemu72)
            |> ignore)

    Assert.EndsWith(".target", e.Path)
    Assert.Contains("an alias needs a target", e.Message)

    let e =
        Assert.Throws<LayoutError>(fun () ->
            MemorySystem(layout [ system [ Spec.Copy(ram "ram" 0x1000UL, target = "system") ] ] [ memory ], Profile.Qemu72)
            |> ignore)

    Assert.EndsWith(".target", e.Path)
    Assert.Contains("only aliases have a target", e.Message)

    let e =
        Assert.Throws<LayoutError>(fun () ->
            MemorySystem(layout [ system [ Spec.Copy(ram "ram" 0x1000UL, subregions = [ ram "inner" 0x10UL ]) ] ] [ memory ], Profile.Qemu72)
            |> ignore)

    Assert.EndsWith(".subregions", e.Path)
    Assert.Contains("a Ram region cannot have subregions in this model", e.Message)

[<Fact>]
let ``a root index past the regions falls back to the root's name`` () =
    let spec =
        layout [ system [ ram "ram" 0x1000UL ] ] [ AddressSpaceSpec("memory", "system", RootIndex = Nullable 1) ]

    let s = MemorySystem(spec, Profile.Qemu72)
    Assert.Equal("system", s.Space("memory").Root.Name)

/// An alias can name which of several regions of one name it targets (targetIndex, counting from 0); an index
/// past them, or a name no region carries, is refused at the alias's targetIndex.
[<Fact>]
let ``an alias target index past the regions of that name, or of a name nobody carries`` () =
    let twice =
        [ Spec.Copy(Spec.Region("box", RegionKind.Container, u128 0x10000UL), subregions = [ ram "dup" 0x1000UL ])
          Spec.Copy(Spec.Region("box2", RegionKind.Container, u128 0x10000UL, 0x10000UL), subregions = [ ram "dup" 0x2000UL ]) ]

    let aliasTo target index =
        RegionSpec(
            Name = "window",
            Kind = RegionKind.Alias,
            Size = u128 0x1000UL,
            Addr = 0x20000UL,
            AliasTarget = target,
            AliasTargetOccurrence = Nullable index
        )

    let path = "$.layout.regions[0].subregions[2].targetIndex"
    refused (layout [ system (twice @ [ aliasTo "dup" 2 ]) ] [ memory ]) path "there is no region #2 named 'dup'"
    refused (layout [ system (twice @ [ aliasTo "nowhere" 0 ]) ] [ memory ]) path "there is no region #0 named 'nowhere'"
    // index 1 is the second "dup", the 0x2000-byte one
    let s =
        MemorySystem(layout [ system (twice @ [ aliasTo "dup" 1 ]) ] [ memory ], Profile.Qemu72)

    let window = s.Region "window"
    Assert.Equal(u128 0x2000UL, window.AliasTarget.Size)

[<Fact>]
let ``a region over 2^64 bytes is refused at its size`` () =
    refused
        (layout [ system [ Spec.Region("huge", RegionKind.Io, two64 + UInt128.One) ] ] [ memory ])
        "$.layout.regions[0].subregions[0].size"
        "a region cannot exceed 2^64 bytes"

/// memory.c:render_memory_region ORs each region's nonvolatile flag into the one inherited from the
/// containers and aliases above it (`nonvolatile |= mr->nonvolatile`): a flat range is nonvolatile when any
/// region on its path is, and stays so when more than one of them says it.
[<Fact>]
let ``a flat range is nonvolatile when its region or any alias above it is`` () =
    let nvram =
        RegionSpec(Name = "nvram", Kind = RegionKind.Ram, Size = u128 0x2000UL, Nonvolatile = true)

    let both =
        RegionSpec(Name = "both", Kind = RegionKind.Alias, Size = u128 0x1000UL, Addr = 0x10000UL, AliasTarget = "nvram", Nonvolatile = true)

    let plain =
        RegionSpec(Name = "plain", Kind = RegionKind.Alias, Size = u128 0x1000UL, Addr = 0x20000UL, AliasTarget = "nvram", AliasOffset = 0x1000UL)

    let s =
        MemorySystem(layout [ system [ both; plain ]; nvram ] [ memory ], Profile.Qemu92)

    let ranges = (s.Space "memory").View.Ranges |> List.ofSeq
    Assert.Equal<uint64 list>([ 0x10000UL; 0x20000UL ], ranges |> List.map (fun r -> r.Start))
    Assert.All(ranges, fun r -> Assert.True(r.Nonvolatile, sprintf "range at 0x%x is not nonvolatile" r.Start))

/// RAMBlocks occupy disjoint, page-aligned ranges of the ram_addr space (physmem.c:find_ram_offset hands out
/// a gap no other block uses), which indexes the dirty bitmaps: a write to one block must never be recorded
/// as dirtying another. A first block of 2^40 bytes leaves the next one's offset far past 2^32 pages.
[<Fact>]
let ``RAM blocks get disjoint page-aligned ram_addr ranges, and a write dirties a page of its own block`` () =
    let big = ram "big" (1UL <<< 40)

    let small = Spec.Region("small", RegionKind.Ram, u128 0x1000UL, 1UL <<< 41)

    let odd = Spec.Region("odd", RegionKind.Ram, u128 0x1801UL, 1UL <<< 42)

    let s =
        MemorySystem(layout [ system [ big; odd; small ] ] [ memory ], Profile.Qemu92)

    let blocks = [ "big"; "odd"; "small" ] |> List.map (fun n -> (s.Region n).RamBlock)

    for b in blocks do
        Assert.Equal(0UL, b.RamAddr % 4096UL)

    for a in blocks do
        for b in blocks do
            if not (obj.ReferenceEquals(a, b)) then
                let aEnd = UInt128(0UL, a.RamAddr) + a.MaxLength
                let bEnd = UInt128(0UL, b.RamAddr) + b.MaxLength

                Assert.True(
                    aEnd <= UInt128(0UL, b.RamAddr) || bEnd <= UInt128(0UL, a.RamAddr),
                    sprintf "%s [0x%x, +0x%O) and %s [0x%x, +0x%O) overlap" a.Name a.RamAddr a.MaxLength b.Name b.RamAddr b.MaxLength
                )

    s.Write(s.Space "memory", 1UL <<< 41, ReadOnlySpan [| 1uy |])
    let page = Seq.exactlyOne (s.Dirty.Pages DirtyClient.Migration)
    let struct (block, index) = s.LocatePage page
    Assert.Equal(("small", 0UL), (block.Name, index))
