/// Concurrency counterexamples as files, like every other failure: a case of P20-P24 (the commands of each
/// thread, the requests of each device, or the chains of each device's queue) with the property it is
/// judged by, so it can be saved to fixtures/regressions/, replayed and explained from the file. A
/// controlled schedule is derived from the case, so its runs repeat exactly; free runs are real threads.
module Conformance.Properties.ConcurrentCaseFile

open System
open System.Text.Json
open System.Text.Json.Nodes
open Conformance.Model
open Conformance.Model.Scenarios
open Conformance.Properties.ParallelCommands

/// A case of one of the three concurrency workloads.
type ConcurrentCase =
    /// P20, P21, P23: a prefix, then threads of DMA commands.
    | Commands of ParallelCase
    /// P22: devices that map, register a client on failure and retry.
    | Wakeup of WakeupWorkload.WakeupCase
    /// P24: devices popping and pushing chains on their own queues.
    | Queues of ParallelVirtqueues.QueuesCase

let profileOf =
    function
    | Commands c -> c.Profile
    | Wakeup c -> c.Profile
    | Queues c -> c.Profile

let render =
    function
    | Commands c -> ParallelCommands.render c
    | Wakeup c -> WakeupWorkload.render c
    | Queues c -> ParallelVirtqueues.render c

let private target =
    function
    | Ram -> "ram"
    | Mmio -> "mmio"

let private command (c: Command) : JsonNode =
    let o = JsonObject()

    match c with
    | Map(space, t, offset, length, write) ->
        o["op"] <- "map"
        o["space"] <- space
        o["target"] <- target t
        o["offset"] <- offset
        o["length"] <- length
        o["write"] <- write
    | WriteThrough(mapping, fill) ->
        o["op"] <- "writeThrough"
        o["mapping"] <- mapping
        o["fill"] <- int fill
    | Unmap(mapping, percent) ->
        o["op"] <- "unmap"
        o["mapping"] <- mapping
        o["percent"] <- percent
    | Register space ->
        o["op"] <- "register"
        o["space"] <- space
    | Unregister space ->
        o["op"] <- "unregister"
        o["space"] <- space

    o

let private array (items: JsonNode seq) =
    JsonArray(Array.ofSeq items) :> JsonNode

/// The file's text: `"kind": "concurrent"`, the property, the profile, and the workload.
let write (property: string) (description: string option) (c: ConcurrentCase) =
    let o = JsonObject()
    o["kind"] <- "concurrent"
    description |> Option.iter (fun d -> o["description"] <- d)
    o["property"] <- property
    o["profile"] <- string (profileOf c)

    match c with
    | Commands pc ->
        o["prefix"] <- array (pc.Prefix |> List.map command)
        o["threads"] <- array (pc.Threads |> List.map (fun t -> array (t |> List.map command)))
    | Wakeup wc ->
        o["devices"] <-
            array (
                wc.Devices
                |> List.map (fun d ->
                    array (
                        d
                        |> List.map (fun r ->
                            JsonObject(
                                dict
                                    [ "space", JsonValue.Create r.Space :> JsonNode
                                      "offset", JsonValue.Create r.Offset
                                      "length", JsonValue.Create r.Length
                                      "write", JsonValue.Create r.Write ]
                            )
                            :> JsonNode)
                    ))
            )
    | Queues qc ->
        o["queues"] <-
            array (
                qc.Devices
                |> List.map (fun chains ->
                    array (
                        chains
                        |> List.map (fun chain ->
                            array (
                                chain
                                |> List.map (fun b ->
                                    JsonObject(
                                        dict
                                            [ "target", JsonValue.Create(target b.Target) :> JsonNode
                                              "offset", JsonValue.Create b.Offset
                                              "length", JsonValue.Create b.Length
                                              "deviceWrites", JsonValue.Create b.DeviceWrites ]
                                    )
                                    :> JsonNode)
                            ))
                    ))
            )

    o.ToJsonString(JsonSerializerOptions(WriteIndented = true)) + "\n"

let private fail path message =
    raise (ScenarioFormatException(path, message))

let private field (e: JsonElement) (name: string) (path: string) =
    match e.TryGetProperty name with
    | true, v -> v
    | _ -> fail path (sprintf "missing field '%s'" name)

let private allowOnly (e: JsonElement) (path: string) (names: string list) =
    if e.ValueKind <> JsonValueKind.Object then
        fail path "expected an object"

    for p in e.EnumerateObject() do
        if not (List.contains p.Name names) then
            fail (sprintf "%s.%s" path p.Name) (sprintf "unknown field (expected %s)" (String.Join(", ", names)))

let private int32 (e: JsonElement) (name: string) (path: string) (low: int) (high: int) =
    let v = field e name path
    let p = sprintf "%s.%s" path name

    match
        v.ValueKind,
        (if v.ValueKind = JsonValueKind.Number then
             v.TryGetInt32()
         else
             (false, 0))
    with
    | JsonValueKind.Number, (true, n) when n >= low && n <= high -> n
    | _ -> fail p (sprintf "expected a whole number from %d to %d" low high)

let private bool (e: JsonElement) (name: string) (path: string) =
    match (field e name path).ValueKind with
    | JsonValueKind.True -> true
    | JsonValueKind.False -> false
    | _ -> fail (sprintf "%s.%s" path name) "expected true or false"

let private str (e: JsonElement) (name: string) (path: string) =
    match field e name path with
    | v when v.ValueKind = JsonValueKind.String -> v.GetString()
    | _ -> fail (sprintf "%s.%s" path name) "expected a string"

let private items (e: JsonElement) (path: string) =
    if e.ValueKind <> JsonValueKind.Array then
        fail path "expected an array"

    e.EnumerateArray()
    |> Seq.mapi (fun i x -> sprintf "%s[%d]" path i, x)
    |> List.ofSeq

let private targetOf (text: string) (path: string) =
    match text with
    | "ram" -> Ram
    | "mmio" -> Mmio
    | other -> fail path (sprintf "unknown target '%s' (expected ram or mmio)" other)

let private bytes = 2 * SliceSize

let private readCommand (path: string, e: JsonElement) =
    match str e "op" path with
    | "map" ->
        allowOnly e path [ "op"; "space"; "target"; "offset"; "length"; "write" ]

        Map(
            int32 e "space" path 0 (SpaceNames.Length - 1),
            targetOf (str e "target" path) (path + ".target"),
            int32 e "offset" path 0 bytes,
            int32 e "length" path 1 bytes,
            bool e "write" path
        )
    | "writeThrough" ->
        allowOnly e path [ "op"; "mapping"; "fill" ]
        WriteThrough(int32 e "mapping" path 0 10_000, byte (int32 e "fill" path 0 255))
    | "unmap" ->
        allowOnly e path [ "op"; "mapping"; "percent" ]
        Unmap(int32 e "mapping" path 0 10_000, int32 e "percent" path 0 100)
    | "register" ->
        allowOnly e path [ "op"; "space" ]
        Register(int32 e "space" path 0 (SpaceNames.Length - 1))
    | "unregister" ->
        allowOnly e path [ "op"; "space" ]
        Unregister(int32 e "space" path 0 (SpaceNames.Length - 1))
    | other -> fail (path + ".op") (sprintf "unknown command '%s' (expected map, writeThrough, unmap, register, unregister)" other)

/// Whether a file's text is a concurrency case (rather than a scenario).
let isConcurrent (text: string) =
    try
        use doc =
            JsonDocument.Parse(text, JsonDocumentOptions(CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true))

        doc.RootElement.ValueKind = JsonValueKind.Object
        && (match doc.RootElement.TryGetProperty "kind" with
            | true, k when k.ValueKind = JsonValueKind.String -> k.GetString() = "concurrent"
            | _ -> false)
    with :? JsonException ->
        false

/// Reads a file's text: the property, the description, and the case. Bad input is a ScenarioFormatException
/// naming the JSON path.
let read (text: string) : string * string option * ConcurrentCase =
    use doc =
        try
            JsonDocument.Parse(text, JsonDocumentOptions(CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true))
        with :? JsonException as e ->
            fail "$" ("not valid JSON: " + e.Message)

    let root = doc.RootElement

    allowOnly
        root
        "$"
        [ "kind"
          "description"
          "property"
          "profile"
          "prefix"
          "threads"
          "devices"
          "queues" ]

    let property = str root "property" "$"

    let profile =
        match str root "profile" "$" with
        | "Qemu72" -> Profile.Qemu72
        | "Qemu92" -> Profile.Qemu92
        | other -> fail "$.profile" (sprintf "unknown profile '%s' (expected Qemu72 or Qemu92)" other)

    let description =
        match root.TryGetProperty "description" with
        | true, d when d.ValueKind = JsonValueKind.String -> Some(d.GetString())
        | _ -> None

    let has (name: string) = fst (root.TryGetProperty name)

    // every actor owns one slice of the machine (ParallelCommands.SliceSize): at most MaxActors - 1 besides the prefix
    for name in [ "threads"; "devices"; "queues" ] do
        if has name then
            let arr = root.GetProperty name

            if arr.ValueKind <> JsonValueKind.Array then
                fail ("$." + name) "expected an array"

            let n = arr.GetArrayLength()

            if n < 1 || n > MaxActors - 1 then
                fail ("$." + name) (sprintf "expected 1 to %d of them, found %d" (MaxActors - 1) n)

    let case =
        if has "threads" then
            Commands
                { Profile = profile
                  Prefix =
                    (if has "prefix" then
                         items (root.GetProperty "prefix") "$.prefix" |> List.map readCommand
                     else
                         [])
                  Threads =
                    items (root.GetProperty "threads") "$.threads"
                    |> List.map (fun (p, t) -> items t p |> List.map readCommand) }
        elif has "devices" then
            Wakeup
                { Profile = profile
                  Devices =
                    items (root.GetProperty "devices") "$.devices"
                    |> List.map (fun (p, d) ->
                        items d p
                        |> List.map (fun (q, r) ->
                            allowOnly r q [ "space"; "offset"; "length"; "write" ]

                            ({ Space = int32 r "space" q 0 (SpaceNames.Length - 1)
                               Offset = int32 r "offset" q 0 bytes
                               Length = int32 r "length" q 1 bytes
                               Write = bool r "write" q }
                            : WakeupWorkload.Request))) }
        elif has "queues" then
            Queues
                { Profile = profile
                  Devices =
                    items (root.GetProperty "queues") "$.queues"
                    |> List.map (fun (p, chains) ->
                        items chains p
                        |> List.map (fun (q, chain) ->
                            items chain q
                            |> List.map (fun (r, b) ->
                                allowOnly b r [ "target"; "offset"; "length"; "deviceWrites" ]

                                ({ Target = targetOf (str b "target" r) (r + ".target")
                                   Offset = int32 b "offset" r 0 bytes
                                   Length = int32 b "length" r 1 bytes
                                   DeviceWrites = bool b "deviceWrites" r }
                                : ParallelVirtqueues.Buffer)))) }
        else
            fail "$" "a concurrency case needs threads (P20, P21, P23), devices (P22) or queues (P24)"

    property, description, case
