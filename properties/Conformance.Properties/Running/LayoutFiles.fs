/// Layouts that scenario files name by file (an `info mtree` dump and QEMU's flat view of the same machine):
/// read relative to the scenario's folder, then to the suite's root, imported, and given their bounce budgets.
module Conformance.Properties.LayoutFiles

open System.IO
open Conformance.Model
open Conformance.Model.Scenarios

/// The file a reference names: as given if absolute, else beside the scenario, else under the root.
let locate (scenarioDir: string option) (path: string) =
    if Path.IsPathRooted path then
        path
    else
        [ yield! scenarioDir |> Option.map (fun d -> Path.Combine(d, path)) |> Option.toList
          yield Path.Combine(Settings.root (), path) ]
        |> List.tryFind File.Exists
        |> Option.defaultValue (Path.Combine(Settings.root (), path))

/// Reads and imports a referenced layout (a LayoutError names the file and line; a missing file is a LayoutError too).
let resolve (scenarioDir: string option) (r: LayoutReference) : LayoutSpec =
    let read (path: string) =
        let file = locate scenarioDir path

        try
            File.ReadAllText file
        with
        | :? IOException
        | :? System.UnauthorizedAccessException as e -> raise (LayoutError(path, sprintf "cannot read %s (%s)" file e.Message))

    let imported =
        MtreeDump.Import(read r.Mtree, MtreeImportOptions(Source = r.Mtree, Flat = (r.Flat |> Option.ofObj |> Option.map read |> Option.toObj)))

    for name in r.MaxBounceBufferSizes.Keys do
        if not (imported.Layout.AddressSpaces |> Seq.exists (fun a -> a.Name = name)) then
            raise (LayoutError(r.Mtree, sprintf "no address space '%s' to give a bounce budget" name))

    let spaces =
        imported.Layout.AddressSpaces
        |> Seq.map (fun a ->
            match r.MaxBounceBufferSizes.TryGetValue a.Name with
            | true, budget -> AddressSpaceSpec(a.Name, a.Root, budget, a.RootIndex)
            | _ -> a)
        |> Array.ofSeq

    LayoutSpec(imported.Layout.Regions, spaces, imported.Layout.Dirty)

/// Parses a scenario file's text, reading referenced layouts relative to the file's folder.
let parseScenarioFile (path: string) (text: string) =
    ScenarioJson.Parse(text, System.Func<_, _>(resolve (Some(Path.GetDirectoryName(Path.GetFullPath path)))))
