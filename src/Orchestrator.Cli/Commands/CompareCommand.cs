using System.CommandLine;
using System.Globalization;
using Orchestrator.Training.Safetensors;
using Spectre.Console;

namespace Orchestrator.Cli.Commands;

/// <summary><c>orchestrator compare a.safetensors b.safetensors</c>: per-tensor and overall differences.</summary>
public static class CompareCommand
{
    public static Command Create()
    {
        var a = new Argument<string>("a") { Description = "first weights file (safetensors)" };
        var b = new Argument<string>("b") { Description = "second weights file (safetensors)" };
        var json = new Option<bool>("--json") { Description = "print one JSON document" };
        var command = new Command("compare", "max absolute and relative difference per tensor and overall") { a, b, json };
        command.SetAction(result => CliErrors.Run(() => Execute(result.GetValue(a)!, result.GetValue(b)!, result.GetValue(json))));
        return command;
    }

    public sealed record TensorDifference(string Name, long[] Shape, double MaxAbsDiff, double MaxRelDiff);
    public sealed record Comparison(IReadOnlyList<TensorDifference> Tensors, double MaxAbsDiff, double MaxRelDiff,
        IReadOnlyList<string> OnlyInA, IReadOnlyList<string> OnlyInB, IReadOnlyList<string> ShapeMismatches)
    {
        public bool Comparable => OnlyInA.Count == 0 && OnlyInB.Count == 0 && ShapeMismatches.Count == 0;
    }

    private static int Execute(string pathA, string pathB, bool json)
    {
        foreach (var p in new[] { pathA, pathB })
            if (!File.Exists(p)) throw new UsageException($"file not found: {p}");
        var comparison = Compare(SafetensorsCodec.ReadFile(pathA), SafetensorsCodec.ReadFile(pathB));
        if (json) Console.WriteLine(JsonOutput.Serialize(comparison));
        else Print(comparison);
        if (comparison.Comparable) return ExitCodes.Success;
        return CliErrors.Report("the files do not hold the same tensors (see above)", ExitCodes.Failed);
    }

    public static Comparison Compare(SafetensorsContent a, SafetensorsContent b)
    {
        var byName = b.Tensors.ToDictionary(t => t.Name);
        var rows = new List<TensorDifference>();
        var mismatched = new List<string>();
        double maxAbs = 0, maxRel = 0;
        foreach (var ta in a.Tensors)
        {
            if (!byName.TryGetValue(ta.Name, out var tb)) continue;
            if (!ta.Shape.SequenceEqual(tb.Shape))
            {
                mismatched.Add($"{ta.Name}: [{string.Join(",", ta.Shape)}] vs [{string.Join(",", tb.Shape)}]");
                continue;
            }
            var (abs, rel) = Differences(ModelWeights.ToDoubles(ta), ModelWeights.ToDoubles(tb));
            rows.Add(new TensorDifference(ta.Name, ta.Shape, abs, rel));
            maxAbs = Math.Max(maxAbs, abs);
            maxRel = Math.Max(maxRel, rel);
        }
        var onlyA = a.Tensors.Select(t => t.Name).Where(n => !byName.ContainsKey(n)).ToList();
        var namesA = a.Tensors.Select(t => t.Name).ToHashSet();
        var onlyB = b.Tensors.Select(t => t.Name).Where(n => !namesA.Contains(n)).ToList();
        return new Comparison(rows, maxAbs, maxRel, onlyA, onlyB, mismatched);
    }

    /// <summary>Max |a−b|, and max |a−b| / max(|a|,|b|) over elements where either is non-zero.</summary>
    public static (double Abs, double Rel) Differences(double[] a, double[] b)
    {
        double maxAbs = 0, maxRel = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double diff = Math.Abs(a[i] - b[i]);
            if (double.IsNaN(diff)) return (double.NaN, double.NaN);
            maxAbs = Math.Max(maxAbs, diff);
            double scale = Math.Max(Math.Abs(a[i]), Math.Abs(b[i]));
            if (scale > 0) maxRel = Math.Max(maxRel, diff / scale);
        }
        return (maxAbs, maxRel);
    }

    private static void Print(Comparison c)
    {
        var table = new Table().AddColumns("tensor", "shape", "max abs diff", "max rel diff");
        foreach (var row in c.Tensors)
            table.AddRow(Markup.Escape(row.Name), $"[[{string.Join(",", row.Shape)}]]", Num(row.MaxAbsDiff), Num(row.MaxRelDiff));
        AnsiConsole.Write(table);
        foreach (var n in c.OnlyInA) Console.WriteLine($"only in the first file: {n}");
        foreach (var n in c.OnlyInB) Console.WriteLine($"only in the second file: {n}");
        foreach (var n in c.ShapeMismatches) Console.WriteLine($"shape differs: {n}");
        Console.WriteLine($"overall: max abs diff {Num(c.MaxAbsDiff)}, max rel diff {Num(c.MaxRelDiff)}");
    }

    private static string Num(double d) => d.ToString("G6", CultureInfo.InvariantCulture);
}
