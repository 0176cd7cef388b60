using System.Text.Json;

namespace Orchestrator.Cli;

/// <summary>The client's JSON: camelCase field names, as the CLI contract promises.</summary>
public static class JsonOutput
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        // A diverged run has NaN loss; say so instead of failing to print.
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);
}
