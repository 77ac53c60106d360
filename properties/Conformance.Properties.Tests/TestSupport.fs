module Conformance.Properties.Tests.TestSupport

open System
open System.IO

/// The repository root (the folder holding Conformance.sln), found from the test assembly's location.
let repoRoot =
    lazy (
        let rec up (dir: DirectoryInfo) =
            if isNull dir then failwith "Conformance.sln not found above the test assembly"
            elif File.Exists(Path.Combine(dir.FullName, "Conformance.sln")) then dir.FullName
            else up dir.Parent
        up (DirectoryInfo AppContext.BaseDirectory))

let fromRoot (relative: string) = Path.Combine(repoRoot.Value, relative)
