// Build a layout by hand, look at its flat view, and try map/unmap on it.
//   dotnet fsi properties/scripts/explore.fsx          (runs the example below)
//   dotnet fsi --load:properties/scripts/explore.fsx   (then keep going interactively)
// (build first: dotnet build Conformance.sln)
#load "Assemblies.fsx"

open System
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.Oracle
open Conformance.Properties.LayoutBuilding

/// Regions: name, address in the parent, size.
let ram name addr size =
    Spec.Region(name, RegionKind.Ram, u128 size, addr)

let rom name addr size =
    Spec.Region(name, RegionKind.Rom, u128 size, addr)

let mmio name addr size =
    Spec.Region(name, RegionKind.Io, u128 size, addr)

let alias name addr size target offset =
    Spec.Copy(Spec.Region(name, RegionKind.Alias, u128 size, addr), target = target, aliasOffset = offset)

let prio p (r: RegionSpec) = Spec.Copy(r, priority = p)

/// A "system" container over the whole address space holding `regions`, seen by the address space "memory";
/// `detached` are regions outside it (alias targets).
let layout (regions: RegionSpec list) (detached: RegionSpec list) =
    let system =
        Spec.Copy(Spec.Region("system", RegionKind.Container, two64), subregions = regions)

    LayoutSpec(Array.ofList (system :: detached), [| AddressSpaceSpec("memory", "system") |], DirtyLogging.Default)

let flat (l: LayoutSpec) =
    printf "%s" (FlatViewText.Print(MemorySystem(l, Profile.Qemu72).AddressSpaces))

let why (l: LayoutSpec) (addr: uint64) =
    printfn "%s" (RegionPath.Explain(MemorySystem(l, Profile.Qemu72).Space "memory", addr))

/// Runs operations on the layout and prints the trace (and, with explain = true, the explanation).
let run (profile: Profile) (l: LayoutSpec) (ops: ScenarioOp list) (explain: bool) =
    let r = ScenarioRunner.Run(Scenario(profile, l, Array.ofList ops))

    printf
        "%s"
        (if explain then
             ScenarioExplanation.Render r
         else
             ScenarioTrace.Render r)

let map id addr len write =
    MapOp(id, "memory", addr, len, write) :> ScenarioOp

let put id (bytes: byte[]) =
    WriteMappedOp(id, 0UL, bytes, Nullable()) :> ScenarioOp

let unmap id accessLen =
    UnmapOp(id, Nullable<uint64>(accessLen)) :> ScenarioOp

// Example: RAM with a higher-priority MMIO window over part of it, and an alias into a detached RAM block.
let example =
    layout
        [ ram "ram" 0UL 0x10000UL
          mmio "window" 0x4000UL 0x1000UL |> prio 1
          alias "shadow" 0x20000UL 0x2000UL "backing" 0x1000UL ]
        [ ram "backing" 0UL 0x4000UL ]

if fsi.CommandLineArgs |> Array.exists (fun a -> a.EndsWith "explore.fsx") then
    flat example
    why example 0x4010UL
    why example 0x20010UL
    run Profile.Qemu72 example [ map "m1" 0x3ff8UL 64UL true; put "m1" [| 1uy; 2uy |]; unmap "m1" 2UL ] true
