using Akka.Configuration;

namespace Orchestrator.Cli.Client;

/// <summary>
/// Where the job API is and the token for it. Each value is taken from the first place that has it:
/// the command line, the environment (ORCHESTRATOR_CONTACT, ORCHESTRATOR_TOKEN), cluster-config/client.conf,
/// then the local cluster's run folder (client.env, written by scripts/local-cluster.sh).
/// </summary>
/// <remarks>
/// Over https the server must present a certificate from the cluster's CA: <see cref="CaPath"/> comes from <c>--ca</c>,
/// ORCHESTRATOR_CA, <c>ca</c> in client.conf or the run folder, in that order. Without one, the operating system's
/// store decides (a job API behind a proxy with a public certificate).
/// </remarks>
public sealed record ClientSettings(Uri Contact, string Token, TimeSpan ConnectTimeout, TimeSpan RequestTimeout, string? CaPath = null)
{
    public const string CaVariable = "ORCHESTRATOR_CA";
    public const string ContactVariable = "ORCHESTRATOR_CONTACT";
    public const string TokenVariable = "ORCHESTRATOR_TOKEN";
    public const string ConfigVariable = "ORCHESTRATOR_CLIENT_CONFIG";
    public const string RunDirVariable = "ORCHESTRATOR_RUN_DIR";
    public const string DefaultRunDir = ".orchestrator/local";

    public static ClientSettings Resolve(string? contactOption, string? tokenOption, string? caOption = null)
    {
        var config = LoadConfig();
        var runFolder = LoadClientEnv();
        string? contact = First(contactOption, Environment.GetEnvironmentVariable(ContactVariable), config.GetString("contact", ""), runFolder.GetValueOrDefault(ContactVariable));
        string? token = First(tokenOption, Environment.GetEnvironmentVariable(TokenVariable), config.GetString("token", ""), runFolder.GetValueOrDefault(TokenVariable));
        if (contact is null)
            throw new UsageException($"no contact point: give --contact http://host:port, set {ContactVariable}, or start a local cluster (scripts/local-cluster.sh up)");
        if (!Uri.TryCreate(contact, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new UsageException($"--contact must be an http:// or https:// address, was '{contact}'");
        if (token is null)
            throw new UsageException($"no API token: give --token, set {TokenVariable}, or read it from the coordinator's <data-dir>/api-token");
        string? ca = First(caOption, Environment.GetEnvironmentVariable(CaVariable), config.GetString("ca", ""), runFolder.GetValueOrDefault(CaVariable));
        if (ca is not null && !File.Exists(ca))
            throw new UsageException($"--ca: the cluster CA certificate {ca} does not exist (it is ca.crt in the folder orchestrator-node init wrote)");
        return new ClientSettings(uri, token, config.GetTimeSpan("connect-timeout", TimeSpan.FromSeconds(5)), config.GetTimeSpan("request-timeout", TimeSpan.FromSeconds(30)), ca);
    }

    private static string? First(params string?[] values) => values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v))?.Trim();

    private static Config LoadConfig()
    {
        var path = Environment.GetEnvironmentVariable(ConfigVariable) is { Length: > 0 } p ? p : Path.Combine("cluster-config", "client.conf");
        if (!File.Exists(path)) return Config.Empty;
        try { return ConfigurationFactory.ParseString(File.ReadAllText(path)).GetConfig("orchestrator.client") ?? Config.Empty; }
        catch (Exception ex) when (ex is not OutOfMemoryException)   // the HOCON parser throws several types
        {
            throw new UsageException($"{path}: not valid HOCON: {ex.Message}");
        }
    }

    /// <summary>KEY=VALUE lines of the local cluster's client.env (the same file scripts can source).</summary>
    private static Dictionary<string, string> LoadClientEnv()
    {
        var dir = Environment.GetEnvironmentVariable(RunDirVariable) is { Length: > 0 } d ? d : DefaultRunDir;
        var path = Path.Combine(dir, "client.env");
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(path)) return values;
        foreach (var line in File.ReadAllLines(path))
        {
            var text = line.Trim();
            if (text.StartsWith("export ", StringComparison.Ordinal)) text = text[7..];
            int eq = text.IndexOf('=');
            if (eq > 0 && !text.StartsWith('#')) values[text[..eq]] = text[(eq + 1)..].Trim('"', '\'');
        }
        return values;
    }
}
