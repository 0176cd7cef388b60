using System.Runtime.InteropServices;
using System.Text.Json;
using Orchestrator.Training.Safetensors;

namespace Orchestrator.Cli.Tests;

public sealed class CompareCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cli-compare-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Write(string name, params (string Name, float[] Values)[] tensors)
    {
        var path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, SafetensorsCodec.Encode(tensors.Select(t =>
            new SafetensorsTensor(t.Name, "F32", [t.Values.Length], MemoryMarshal.AsBytes(t.Values.AsSpan()).ToArray())).ToList()));
        return path;
    }

    [Fact]
    public void Reports_max_absolute_and_relative_difference_per_tensor_and_overall()
    {
        var a = Write("a.safetensors", ("w", [1f, 2f, -4f]), ("b", [0f, 10f]));
        var b = Write("b.safetensors", ("w", [1f, 2.5f, -4f]), ("b", [0f, 10f]));
        var result = Cli.Run("compare", a, b, "--json");
        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal(0.5, json.RootElement.GetProperty("maxAbsDiff").GetDouble(), 6);
        Assert.Equal(0.2, json.RootElement.GetProperty("maxRelDiff").GetDouble(), 6);
        var w = json.RootElement.GetProperty("tensors")[0];
        Assert.Equal("w", w.GetProperty("name").GetString());
        Assert.Equal(0.5, w.GetProperty("maxAbsDiff").GetDouble(), 6);

        var human = Cli.Run("compare", a, b);
        Assert.Equal(0, human.ExitCode);
        Assert.Contains("overall: max abs diff 0.5, max rel diff 0.2", human.Stdout);
    }

    [Fact]
    public void Different_tensor_sets_fail_with_exit_1_and_say_which()
    {
        var a = Write("a.safetensors", ("w", [1f]), ("x", [1f]));
        var b = Write("b.safetensors", ("w", [1f]), ("y", [1f]));
        var result = Cli.Run("compare", a, b);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("only in the first file: x", result.Stdout);
        Assert.Contains("only in the second file: y", result.Stdout);
    }

    [Fact]
    public void A_corrupt_or_missing_file_exits_2_naming_it()
    {
        var a = Write("a.safetensors", ("w", [1f, 2f]));
        var cut = Path.Combine(_folder, "cut.safetensors");
        File.WriteAllBytes(cut, File.ReadAllBytes(a)[..^1]);
        var corrupt = Cli.Run("compare", a, cut);
        Assert.Equal(2, corrupt.ExitCode);
        Assert.Contains(cut, corrupt.Stderr);
        Assert.Contains("truncated", corrupt.Stderr);
        var missing = Cli.Run("compare", a, Path.Combine(_folder, "none.safetensors"));
        Assert.Equal(2, missing.ExitCode);
        Assert.DoesNotContain("   at ", corrupt.Stderr + missing.Stderr);
    }
}
