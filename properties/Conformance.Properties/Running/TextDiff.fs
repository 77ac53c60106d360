/// Unified diffs of two texts, line by line, for snapshot mismatches: DiffPlex finds the changed lines,
/// this module groups them into hunks with context.
module Conformance.Properties.TextDiff

open System
open DiffPlex.DiffBuilder
open DiffPlex.DiffBuilder.Model

/// A unified diff with `context` lines around each change; empty when the texts are equal.
let unified (oldName: string) (newName: string) (oldText: string) (newText: string) (context: int) =
    let model =
        InlineDiffBuilder.Diff(oldText.Replace("\r\n", "\n"), newText.Replace("\r\n", "\n"), ignoreWhiteSpace = false)
    // edit script: (' ' | '-' | '+', line, old index, new index)
    let ops = ResizeArray<char * string * int * int>()
    let mutable i, j = 0, 0

    for line in model.Lines do
        match line.Type with
        | ChangeType.Deleted ->
            ops.Add('-', line.Text, i, j)
            i <- i + 1
        | ChangeType.Inserted ->
            ops.Add('+', line.Text, i, j)
            j <- j + 1
        | _ ->
            ops.Add(' ', line.Text, i, j)
            i <- i + 1
            j <- j + 1

    let changed =
        ops
        |> Seq.indexed
        |> Seq.filter (fun (_, (k, _, _, _)) -> k <> ' ')
        |> Seq.map fst
        |> Array.ofSeq

    if changed.Length = 0 then
        ""
    else
        let sb = Text.StringBuilder()
        sb.Append(sprintf "--- %s\n+++ %s\n" oldName newName) |> ignore
        // group changes into hunks
        let mutable k = 0

        while k < changed.Length do
            let start = max 0 (changed.[k] - context)
            let mutable stop = min (ops.Count - 1) (changed.[k] + context)
            let mutable next = k + 1

            while next < changed.Length && changed.[next] - context <= stop + 1 do
                stop <- min (ops.Count - 1) (changed.[next] + context)
                next <- next + 1

            let (_, _, oi, nj) = ops.[start]

            let oldCount =
                seq { start..stop }
                |> Seq.filter (fun x -> let (c, _, _, _) = ops.[x] in c <> '+')
                |> Seq.length

            let newCount =
                seq { start..stop }
                |> Seq.filter (fun x -> let (c, _, _, _) = ops.[x] in c <> '-')
                |> Seq.length

            sb.Append(sprintf "@@ -%d,%d +%d,%d @@\n" (oi + 1) oldCount (nj + 1) newCount)
            |> ignore

            for x in start..stop do
                let (c, line, _, _) = ops.[x]
                sb.Append(c).Append(line).Append('\n') |> ignore

            k <- next

        sb.ToString()
