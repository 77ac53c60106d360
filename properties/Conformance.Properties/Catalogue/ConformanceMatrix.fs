/// The conformance matrix: every rule the catalogue cites (VIRTIO 1.2 sections, QEMU functions, CVEs), the
/// properties that check it, and the status — checked, or broken by QEMU itself (a registered finding).
module Conformance.Properties.ConformanceMatrix


let private order (rule: string) =
    if rule.StartsWith "VIRTIO" then 0
    elif rule.StartsWith "CVE" then 2
    else 1

/// A Markdown table, one row per rule.
let render () =
    let entries = [ for e in Catalogue.all -> e.Number, e.Name, e.Rules ]

    let rows =
        entries
        |> List.collect (fun (n, name, rules) -> rules |> List.map (fun r -> r, (n, name)))
        |> List.groupBy fst
        |> List.sortBy (fun (r, _) -> order r, r)

    let lines =
        [ yield "| rule | properties | status |"
          yield "|------|------------|--------|"
          for (rule, entries) in rows do
              let props =
                  entries
                  |> List.map (fun (_, (n, name)) -> sprintf "P%d %s" n name)
                  |> List.distinct
                  |> String.concat ", "

              let findings =
                  entries
                  |> List.collect (fun (_, (_, name)) ->
                      Findings.all
                      |> List.filter (fun f -> f.Property = name && (f.Rules.IsEmpty || List.contains rule f.Rules)))
                  |> List.map (fun f -> f.Id)
                  |> List.distinct

              let status =
                  if findings.IsEmpty then
                      "checked; each property rejects its broken variant"
                  else
                      sprintf "checked; QEMU deviates: %s" (String.concat ", " findings)

              yield sprintf "| %s | %s | %s |" rule props status ]

    String.concat "\n" lines + "\n"
