/// The command language of the concurrency properties: what a device thread does with the DMA API
/// (map, write through its mapping, unmap, register or unregister a map client), a fixed small machine
/// to do it on, and one step of a command against a model instance, with a result that can be compared.
module Conformance.Properties.ParallelCommands

open System
open FsCheck
open FsCheck.FSharp
open Conformance.Model
open Conformance.Properties.LayoutBuilding

type Target =
    | Ram
    | Mmio

type Command =
    /// address_space_map of `length` bytes at `offset` inside the actor's own slice of the target.
    | Map of space: int * target: Target * offset: int * length: int * write: bool
    /// Fill the actor's `mapping`-th mapping (counting its Map commands from 0) with `fill`.
    | WriteThrough of mapping: int * fill: byte
    /// Unmap the actor's `mapping`-th mapping with access_len = length * percent / 100.
    | Unmap of mapping: int * percent: int
    | Register of space: int
    | Unregister of space: int

/// A sequential prefix run by actor 0, then 2-4 command lists run in parallel by actors 1..n.
type ParallelCase =
    { Profile: Profile
      Prefix: Command list
      Threads: Command list list }

/// Each actor (the prefix is actor 0) owns one slice of RAM and of the MMIO device, so what threads
/// read and write never overlaps: in QEMU two devices doing DMA to the same bytes race by definition,
/// and the properties are about the shared machinery (bounce space, clients, references), not data races.
let SliceSize = 8192
let MaxActors = 5
let RamBase = 0x0UL
let MmioBase = 0x100000UL
/// The second address space's Qemu92 budget, smaller than the default, so partial grants happen often.
let DevBudget = 2048UL
let SpaceNames = [| "memory"; "dev" |]

/// RAM and a pc-testdev-like MMIO store under one root, seen by two address spaces with their own
/// Qemu92 budgets (Qemu72 shares one buffer between them); migration dirty logging on.
let layout: LayoutSpec =
    let size = uint64 (SliceSize * MaxActors)

    let ram =
        RegionSpec(Name = "ram", Kind = RegionKind.Ram, Size = UInt128.op_Implicit size, Addr = RamBase, Seed = Nullable 0u)

    let mmio =
        RegionSpec(Name = "testdev", Kind = RegionKind.Io, Size = UInt128.op_Implicit size, Addr = MmioBase, Seed = Nullable 0u)

    let root =
        Spec.Copy(Spec.Region("system", RegionKind.Container, UInt128.op_Implicit (1UL <<< 32)), subregions = [ ram; mmio ])

    LayoutSpec(
        [| root |],
        [| AddressSpaceSpec("memory", "system")
           AddressSpaceSpec("dev", "system", DevBudget) |],
        DirtyLogging(Migration = true)
    )

let clientName (actor: int) = sprintf "dev%d" actor

let describe (c: Command) =
    match c with
    | Map(s, t, o, l, w) -> sprintf "map %s %s +0x%x len %d %s" SpaceNames.[s] (if t = Ram then "ram" else "mmio") o l (if w then "write" else "read")
    | WriteThrough(m, f) -> sprintf "write 0x%02x through mapping %d" f m
    | Unmap(m, p) -> sprintf "unmap mapping %d, access_len %d%%" m p
    | Register s -> sprintf "register map client on %s" SpaceNames.[s]
    | Unregister s -> sprintf "unregister map client on %s" SpaceNames.[s]

let render (c: ParallelCase) =
    [ yield sprintf "profile %A" c.Profile
      yield "prefix (actor 0):"
      for cmd in c.Prefix do
          yield "  " + describe cmd
      for i, t in List.indexed c.Threads do
          yield sprintf "thread %d:" (i + 1)

          for cmd in t do
              yield "  " + describe cmd ]

/// What one actor holds: its mappings by Map command index (None: the map failed).
type Actor(index: int) =
    let mappings = Collections.Generic.Dictionary<int, Mapping option>()
    let mutable maps = 0
    member _.Index = index
    /// Between the two halves of an unmap: the address space whose clients the second half notifies.
    member val PendingNotify: AddressSpace option = None with get, set

    member _.Add(m: Mapping option) =
        mappings.[maps] <- m
        maps <- maps + 1

    member _.Mapping(i: int) =
        match mappings.TryGetValue i with
        | true, Some m when m.Live -> Some m
        | _ -> None

let private bytesTouched (target: Target) (actor: int) (offset: int) =
    (if target = Ram then RamBase else MmioBase)
    + uint64 (actor * SliceSize + offset)

/// One step of a command. `split` unmaps in QEMU's two halves (release, then notify) and returns both
/// results; a concurrent history is compared against the two halves as separate operations.
let step (sys: MemorySystem) (actor: Actor) (c: Command) : string list =
    match c with
    | Map(s, t, o, l, w) ->
        let r = sys.Map(sys.AddressSpaces.[s], bytesTouched t actor.Index o, uint64 l, w)
        actor.Add(Option.ofObj r.Mapping)

        [ if r.Succeeded then
              sprintf "%A %d" r.Mapping.Kind r.Length
          else
              sprintf "failed: %A" r.Failure ]
    | WriteThrough(m, f) ->
        match actor.Mapping m with
        | Some mapping ->
            sys.WriteMapped(mapping, 0UL, ReadOnlySpan(Array.create (int mapping.Length) f))
            [ sprintf "wrote %d" mapping.Length ]
        | None -> [ "no mapping" ]
    | Unmap(m, p) ->
        match actor.Mapping m with
        | Some mapping ->
            let r = sys.Unmap(mapping, mapping.Length * uint64 p / 100UL)

            [ sprintf "unmapped, wrote back %d" r.BytesWrittenBack
              (if mapping.Kind = MappingKind.Bounce then
                   sprintf "woke [%s]" (String.Join(",", r.ClientsScheduled))
               else
                   "no notification") ]
        | None -> [ "no mapping"; "no notification" ]
    | Register s -> [ sprintf "woke [%s]" (String.Join(",", sys.RegisterMapClient(sys.AddressSpaces.[s], clientName actor.Index))) ]
    | Unregister s -> [ sprintf "removed %b" (sys.UnregisterMapClient(sys.AddressSpaces.[s], clientName actor.Index)) ]

/// The sequential specification of one half of a command: the reference model doing exactly that part.
/// `half` is 0 for everything but the notification half of an unmap (1).
let stepHalf (sys: MemorySystem) (actor: Actor) (c: Command) (half: int) : string =
    match c, half with
    | Unmap(m, p), 0 ->
        match actor.Mapping m with
        | Some mapping ->
            let r = sys.UnmapBeforeNotifying(mapping, mapping.Length * uint64 p / 100UL)
            // Remember what the second half must notify (the mapping is gone by then).
            actor.PendingNotify <-
                if mapping.Kind = MappingKind.Bounce then
                    Some mapping.AddressSpace
                else
                    None

            sprintf "unmapped, wrote back %d" r.BytesWrittenBack
        | None ->
            actor.PendingNotify <- None
            "no mapping"
    | Unmap _, _ ->
        match actor.PendingNotify with
        | Some space -> sprintf "woke [%s]" (String.Join(",", sys.NotifyMapClients space))
        | None -> "no notification"
    | _ -> (step sys actor c).Head
