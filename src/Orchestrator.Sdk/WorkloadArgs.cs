using System.Globalization;
using System.Text.Json;

namespace Orchestrator.Sdk;

/// <summary>A workload argument that is missing, of the wrong type or out of range. <see cref="Field"/> is its path in the job file.</summary>
public sealed class WorkloadArgumentException(string field, string problem) : Exception($"{field}: {problem}")
{
    /// <summary>The argument's path in the job file, such as <c>workload.args.layers</c>.</summary>
    public string Field { get; } = field;

    /// <summary>What is wrong with it.</summary>
    public string Problem { get; } = problem;
}

/// <summary>
/// The job file's <c>"args"</c> object, read by name with a default and a range. Every error names the
/// field (<c>workload.args.layers: must be >= 1, was 0</c>). After the workload's constructor, any
/// argument it did not read is refused as unknown, so a misspelt name never passes silently.
/// </summary>
public sealed class WorkloadArgs
{
    private readonly Dictionary<string, JsonElement> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    /// <summary>The path that errors name, <c>workload.args</c>.</summary>
    public string Path { get; }

    /// <summary>Where relative paths among the arguments are taken from (the job file's folder), or null for the current folder.</summary>
    public string? BaseDirectory { get; }

    /// <summary>Arguments from a JSON object (the empty object when the job file has none).</summary>
    public WorkloadArgs(JsonElement args, string path = "workload.args", string? baseDirectory = null)
    {
        Path = path;
        BaseDirectory = baseDirectory;
        if (args.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return;
        if (args.ValueKind != JsonValueKind.Object) throw new WorkloadArgumentException(path, $"must be a JSON object, was {Describe(args)}");
        foreach (var p in args.EnumerateObject())
            if (!_values.TryAdd(p.Name, p.Value.Clone())) throw new WorkloadArgumentException(Field(p.Name), "appears more than once");
    }

    /// <summary>Arguments from JSON text (the empty object for null or blank text).</summary>
    public static WorkloadArgs Parse(string? json, string path = "workload.args", string? baseDirectory = null)
    {
        if (string.IsNullOrWhiteSpace(json)) return new WorkloadArgs(default, path, baseDirectory);
        try
        {
            using var document = JsonDocument.Parse(json);
            return new WorkloadArgs(document.RootElement, path, baseDirectory);
        }
        catch (JsonException ex) { throw new WorkloadArgumentException(path, $"not valid JSON: {ex.Message}"); }
    }

    /// <summary>Whether the argument is given (and not null).</summary>
    public bool Has(string name) => _values.TryGetValue(name, out var v) && v.ValueKind != JsonValueKind.Null;

    /// <summary>An integer argument in [<paramref name="min"/>, <paramref name="max"/>], <paramref name="fallback"/> when absent.</summary>
    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue) =>
        (int)Long(name, fallback, min, max);

    /// <summary>A 64-bit integer argument in [<paramref name="min"/>, <paramref name="max"/>], <paramref name="fallback"/> when absent.</summary>
    public long Long(string name, long fallback, long min = long.MinValue, long max = long.MaxValue)
    {
        if (Take(name) is not { } v) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n)) throw new WorkloadArgumentException(Field(name), $"must be an integer, was {Describe(v)}");
        if (n < min) throw new WorkloadArgumentException(Field(name), $"must be >= {min}, was {n}");
        if (n > max) throw new WorkloadArgumentException(Field(name), $"must be <= {max}, was {n}");
        return n;
    }

    /// <summary>A finite number in [<paramref name="min"/>, <paramref name="max"/>], <paramref name="fallback"/> when absent.</summary>
    public double Double(string name, double fallback, double min = double.MinValue, double max = double.MaxValue)
    {
        if (Take(name) is not { } v) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var x) || !double.IsFinite(x))
            throw new WorkloadArgumentException(Field(name), $"must be a finite number, was {Describe(v)}");
        if (x < min) throw new WorkloadArgumentException(Field(name), $"must be >= {Num(min)}, was {Num(x)}");
        if (x > max) throw new WorkloadArgumentException(Field(name), $"must be <= {Num(max)}, was {Num(x)}");
        return x;
    }

    /// <summary>A boolean argument, <paramref name="fallback"/> when absent.</summary>
    public bool Bool(string name, bool fallback)
    {
        if (Take(name) is not { } v) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new WorkloadArgumentException(Field(name), $"must be true or false, was {Describe(v)}"),
        };
    }

    /// <summary>A string argument, <paramref name="fallback"/> when absent (null: required).</summary>
    public string String(string name, string? fallback = null)
    {
        if (Take(name) is not { } v) return fallback ?? throw new WorkloadArgumentException(Field(name), "is required");
        if (v.ValueKind != JsonValueKind.String) throw new WorkloadArgumentException(Field(name), $"must be a string, was {Describe(v)}");
        return v.GetString()!;
    }

    /// <summary>A file that must exist (a relative path is taken from <see cref="BaseDirectory"/>), <paramref name="fallback"/> when absent.</summary>
    public string ExistingFile(string name, string? fallback = null)
    {
        var path = String(name, fallback);
        if (path.Length == 0 || path.Any(char.IsControl)) throw new WorkloadArgumentException(Field(name), "must be a path without control characters");
        var full = BaseDirectory is null ? System.IO.Path.GetFullPath(path) : System.IO.Path.GetFullPath(path, BaseDirectory);
        if (!File.Exists(full)) throw new WorkloadArgumentException(Field(name), $"no such file: {full}");
        return full;
    }

    /// <summary>Refuses any argument not read so far (the engine calls it after the workload's constructor).</summary>
    public void RejectUnknown()
    {
        foreach (var name in _values.Keys)
            if (!_read.Contains(name)) throw new WorkloadArgumentException(Field(name), "unknown argument");
    }

    /// <summary>The path of argument <paramref name="name"/>, for errors of a workload's own checks.</summary>
    public string Field(string name) => $"{Path}.{name}";

    private JsonElement? Take(string name)
    {
        _read.Add(name);
        return _values.TryGetValue(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;
    }

    private static string Num(double d) => d.ToString("G", CultureInfo.InvariantCulture);

    private static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{v.GetString()}\"",
        JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => v.GetRawText(),
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "null",
    };
}
