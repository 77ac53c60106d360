/// Where snapshots live and how pending ones are approved. Snapshooter keeps an approved snapshot at
/// snapshots/<group>/__snapshots__/<name>.snap and writes a mismatching new version beside it in
/// __snapshots__/__mismatch__/; those are the pending snapshots `conformance approve` moves over.
module Conformance.Properties.SnapshotStore

open System.IO

type Pending =
    { Name: string
      Approved: string
      Candidate: string }

let root (repo: string) = Path.Combine(repo, "snapshots")

let pending (repo: string) =
    let dir = root repo

    if not (Directory.Exists dir) then
        []
    else
        Directory.GetFiles(dir, "*.snap", SearchOption.AllDirectories)
        |> Array.filter (fun f -> Path.GetFileName(Path.GetDirectoryName f) = "__mismatch__")
        |> Array.sort
        |> Array.map (fun f ->
            let approved =
                Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName f), Path.GetFileName f)

            { Name = Path.GetRelativePath(dir, approved)
              Approved = approved
              Candidate = f })
        |> List.ofArray

/// The diff a pending snapshot would apply (everything is new when nothing was approved yet).
let diff (p: Pending) =
    let old =
        if File.Exists p.Approved then
            File.ReadAllText p.Approved
        else
            ""

    TextDiff.unified ("approved/" + p.Name) ("pending/" + p.Name) old (File.ReadAllText p.Candidate) 3

let approve (p: Pending) =
    File.Copy(p.Candidate, p.Approved, true)
    File.Delete p.Candidate
    let dir = Path.GetDirectoryName p.Candidate

    if Directory.GetFileSystemEntries(dir).Length = 0 then
        Directory.Delete dir

let reject (p: Pending) =
    File.Delete p.Candidate
    let dir = Path.GetDirectoryName p.Candidate

    if Directory.GetFileSystemEntries(dir).Length = 0 then
        Directory.Delete dir
