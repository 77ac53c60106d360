using BenchmarkDotNet.Running;

// dotnet run -c Release --project src/Conformance.Benchmarks -- --filter '*'   (add --job short for a quick pass)
BenchmarkSwitcher.FromAssembly(typeof(Conformance.Benchmarks.DmaBenchmarks).Assembly).Run(args);
