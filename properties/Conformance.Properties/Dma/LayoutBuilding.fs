/// F# construction and copying of the C# layout records (F# cannot use `with` on C# records).
module Conformance.Properties.LayoutBuilding

open System
open Conformance.Model

type Spec =
    static member Region(name: string, kind: RegionKind, size: UInt128, ?addr: uint64, ?priority: int, ?enabled: bool) =
        RegionSpec(Name = name, Kind = kind, Size = size, Addr = defaultArg addr 0UL, Priority = defaultArg priority 0, Enabled = defaultArg enabled true)

    static member Copy
        (
            r: RegionSpec,
            ?size: UInt128,
            ?priority: int,
            ?enabled: bool,
            ?logVga: bool,
            ?romdMode: bool,
            ?target: string,
            ?aliasOffset: uint64,
            ?access: AccessRules,
            ?subregions: RegionSpec seq,
            ?readonly: bool
        ) =
        RegionSpec(
            Name = r.Name,
            Kind = r.Kind,
            Size = defaultArg size r.Size,
            Addr = r.Addr,
            Priority = defaultArg priority r.Priority,
            Enabled = defaultArg enabled r.Enabled,
            Readonly = defaultArg readonly r.Readonly,
            RomdMode = defaultArg romdMode r.RomdMode,
            LogVga = defaultArg logVga r.LogVga,
            Nonvolatile = r.Nonvolatile,
            Terminates = r.Terminates,
            AliasTarget = defaultArg target r.AliasTarget,
            AliasOffset = defaultArg aliasOffset r.AliasOffset,
            Owner = r.Owner,
            Seed = r.Seed,
            Access = defaultArg access r.Access,
            Subregions =
                (match subregions with
                 | Some s -> (Array.ofSeq s :> System.Collections.Generic.IReadOnlyList<RegionSpec>)
                 | None -> r.Subregions)
        )

    /// A layout of one address space, "memory", over a 2^64 "system" container holding `subregions`, with
    /// the given bounce budget (QEMU's default otherwise); `detached` are further parentless trees, such as a
    /// RAM block that aliases in the system container show.
    static member OneSpace(subregions: RegionSpec seq, ?budget: uint64, ?detached: RegionSpec seq) =
        let system =
            Spec.Copy(Spec.Region("system", RegionKind.Container, Oracle.two64), subregions = subregions)

        LayoutSpec(
            Array.append [| system |] (Array.ofSeq (defaultArg detached Seq.empty)),
            [| AddressSpaceSpec("memory", "system", defaultArg budget ProfileFacts.DefaultMaxBounceBufferSize) |],
            DirtyLogging.Default
        )
