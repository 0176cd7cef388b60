using System.Globalization;
using System.Text.Json;

namespace Orchestrator.Core.Jobs;

/// <summary>
/// Reads the fields of one JSON object with precise errors: wrong types, impossible values,
/// duplicate and unknown fields are reported with the dotted path of the field.
/// </summary>
internal sealed class JsonFields
{
    private readonly string _path;
    private readonly Dictionary<string, JsonElement> _fields = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public JsonFields(JsonElement element, string path)
    {
        _path = path;
        if (element.ValueKind != JsonValueKind.Object)
            throw new JobSpecException(path, $"must be a JSON object, was {Describe(element)}");
        foreach (var property in element.EnumerateObject())
            if (!_fields.TryAdd(property.Name, property.Value))
                throw new JobSpecException(Child(property.Name), "appears more than once");
    }

    public string Child(string name) => _path.Length == 0 ? name : $"{_path}.{name}";

    private JsonElement? Take(string name)
    {
        _read.Add(name);
        return _fields.TryGetValue(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;
    }

    public string RequiredString(string name) =>
        OptionalString(name) ?? throw new JobSpecException(Child(name), "is required");

    public string? OptionalString(string name)
    {
        if (Take(name) is not { } value) return null;
        if (value.ValueKind != JsonValueKind.String)
            throw new JobSpecException(Child(name), $"must be a string, was {Describe(value)}");
        return value.GetString()!;
    }

    public string Choice(string name, string? fallback, params string[] allowed)
    {
        var value = OptionalString(name) ?? fallback ?? throw new JobSpecException(Child(name), "is required");
        if (Array.IndexOf(allowed, value) < 0)
            throw new JobSpecException(Child(name), $"must be one of {string.Join(", ", allowed.Select(a => $"'{a}'"))}, was '{value}'");
        return value;
    }

    public long? OptionalInteger(string name, long min, long max)
    {
        if (Take(name) is not { } value) return null;
        if (value.ValueKind != JsonValueKind.Number)
            throw new JobSpecException(Child(name), $"must be an integer, was {Describe(value)}");
        if (!value.TryGetInt64(out var number))
            throw new JobSpecException(Child(name), $"must be an integer, was {value.GetRawText()}");
        if (number < min || number > max)
            throw new JobSpecException(Child(name), RangeText(min, max, number.ToString(CultureInfo.InvariantCulture)));
        return number;
    }

    public int Int(string name, int fallback, int min, int max) => (int)(OptionalInteger(name, min, max) ?? fallback);

    public double Double(string name, double fallback, double min, double max, bool minExclusive = false, bool maxExclusive = false)
    {
        if (Take(name) is not { } value) return fallback;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || !double.IsFinite(number))
            throw new JobSpecException(Child(name), $"must be a finite number, was {Describe(value)}");
        bool below = minExclusive ? number <= min : number < min;
        bool above = maxExclusive ? number >= max : number > max;
        if (below || above)
        {
            var lower = minExclusive ? $"> {Num(min)}" : $">= {Num(min)}";
            var upper = maxExclusive ? $"< {Num(max)}" : $"<= {Num(max)}";
            var text = double.IsPositiveInfinity(max) ? $"must be {lower}" : $"must be {lower} and {upper}";
            throw new JobSpecException(Child(name), $"{text}, was {Num(number)}");
        }
        return number;
    }

    /// <summary>A nested object kept as JSON text ("{}" when absent or null), for a reader of its own.</summary>
    public string RawObject(string name)
    {
        if (Take(name) is not { } value) return "{}";
        if (value.ValueKind != JsonValueKind.Object)
            throw new JobSpecException(Child(name), $"must be a JSON object, was {Describe(value)}");
        return value.GetRawText();
    }

    public bool Bool(string name, bool fallback)
    {
        if (Take(name) is not { } value) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new JobSpecException(Child(name), $"must be true or false, was {Describe(value)}"),
        };
    }

    public bool Has(string name) => _fields.TryGetValue(name, out var v) && v.ValueKind != JsonValueKind.Null;

    /// <summary>A nested object; an absent or null one reads as an empty object, so its defaults apply.</summary>
    public JsonFields Object(string name)
    {
        var value = Take(name);
        return new JsonFields(value ?? EmptyObject, Child(name));
    }

    /// <summary>Call after reading every known field: anything left is a field we do not know.</summary>
    public void RejectUnknown()
    {
        foreach (var name in _fields.Keys)
            if (!_read.Contains(name))
                throw new JobSpecException(Child(name), "unknown field");
    }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    private static string RangeText(long min, long max, string was) =>
        max == long.MaxValue ? $"must be >= {min}, was {was}" : $"must be between {min} and {max}, was {was}";

    private static string Num(double d) => d.ToString("G", CultureInfo.InvariantCulture);

    internal static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{value.GetString()}\"",
        JsonValueKind.Number => value.GetRawText(),
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "null",
    };
}
