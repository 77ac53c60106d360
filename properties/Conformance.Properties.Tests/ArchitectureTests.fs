/// The README's architecture picture is the truth about which project uses which: it must match the
/// ProjectReference entries of every project file, and the properties must not use QEMU.
module Conformance.Properties.Tests.ArchitectureTests

open System.IO
open System.Text.RegularExpressions
open Xunit
open Conformance.Properties.Tests.TestSupport

let private projectFiles () =
    Directory.GetFiles(repoRoot.Value, "*.*proj", SearchOption.AllDirectories)
    |> Array.filter (fun f ->
        (f.EndsWith ".csproj" || f.EndsWith ".fsproj")
        && not (f.Contains "/bin/" || f.Contains "/obj/"))

let private references (project: string) =
    Regex.Matches(File.ReadAllText project, "ProjectReference Include=\"([^\"]+)\"")
    |> Seq.map (fun m -> Path.GetFileNameWithoutExtension m.Groups.[1].Value)
    |> Set.ofSeq

/// The block under "## Architecture": one line per project, "Name -> A, B".
let private picture () =
    let readme = File.ReadAllText(fromRoot "README.md").Replace("\r\n", "\n")
    let section = readme.Substring(readme.IndexOf "## Architecture")

    let block =
        Regex.Match(section, "```text\n(.*?)```", RegexOptions.Singleline).Groups.[1].Value

    [ for line in block.Split('\n', System.StringSplitOptions.RemoveEmptyEntries) ->
          match line.Split("->") with
          | [| name |] -> name.Trim(), Set.empty
          | [| name; uses |] -> name.Trim(), uses.Split(',') |> Array.map (fun u -> u.Trim()) |> Set.ofArray
          | _ -> failwithf "not an architecture line: %s" line ]
    |> Map.ofList

[<Fact>]
let ``the README's architecture picture matches the project references`` () =
    let drawn = picture ()

    let actual =
        projectFiles ()
        |> Array.map (fun f -> Path.GetFileNameWithoutExtension f, references f)
        |> Map.ofArray

    Assert.Equal<Set<string>>(Set.ofSeq actual.Keys, Set.ofSeq drawn.Keys)

    for KeyValue(name, refs) in actual do
        Assert.True((drawn.[name] = refs), sprintf "README says %s uses %A; its project file says %A" name drawn.[name] refs)

[<Fact>]
let ``the properties and the model use no QEMU`` () =
    let actual =
        projectFiles ()
        |> Array.map (fun f -> Path.GetFileNameWithoutExtension f, references f)
        |> Map.ofArray

    Assert.DoesNotContain("Conformance.Qemu", actual.["Conformance.Properties"])
    Assert.DoesNotContain("Conformance.Qemu.Differential", actual.["Conformance.Properties"])
    Assert.Empty(actual.["Conformance.Model"])

/// Properties judge observations and never import a target: no property code names the model target or
/// runs the model's scenario runner. The two places that build a model instance themselves are oracles,
/// not targets: the sequential specification linearizability is checked against (the reference model by
/// definition) and the shrinker's check that a shrunk layout still builds.
[<Fact>]
let ``the properties never import a target`` () =
    let dir = fromRoot "properties/Conformance.Properties"

    let allowedInstances =
        set [ "Concurrency/ParallelExecution.fs"; "Dma/Generators.fs" ]

    for file in Directory.GetFiles(dir, "*.fs", SearchOption.AllDirectories) do
        let rel = Path.GetRelativePath(dir, file).Replace('\\', '/')

        if not (rel.StartsWith "bin/" || rel.StartsWith "obj/") then
            // code only: string literals (the ready-to-paste regression test names the target it runs on) are left out
            let code = Regex.Replace(File.ReadAllText file, "\"([^\"\\\\]|\\\\.)*\"", "\"\"")

            Assert.False(Regex.IsMatch(code, @"\bModelTarget\b|\bScenarioRunner\b"), sprintf "%s names a target or runs the model directly" rel)

            if not (allowedInstances.Contains rel) then
                Assert.False(Regex.IsMatch(code, @"\bMemorySystem\s*\("), sprintf "%s builds a model instance; ask the target (IInProcessTarget) instead" rel)
