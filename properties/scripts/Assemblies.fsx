// Loads the suite's built assemblies into `dotnet fsi`. Build first: dotnet build Conformance.sln
#r "../../src/Conformance.Cli/bin/Debug/net10.0/FsCheck.dll"
#r "../../src/Conformance.Cli/bin/Debug/net10.0/Conformance.Model.dll"
#r "../../src/Conformance.Cli/bin/Debug/net10.0/Conformance.Properties.dll"
