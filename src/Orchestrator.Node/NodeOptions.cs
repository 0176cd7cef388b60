namespace Orchestrator.Node;

/// <summary>The node's command line, before it is merged with the configuration files.</summary>
public sealed record NodeOptions(
    IReadOnlyList<string> Roles,
    IReadOnlyList<string> ConfigFiles,
    string? Hostname,
    int? Port,
    IReadOnlyList<string> Seeds,
    string? DataDir,
    int? ApiPort,
    IReadOnlyList<string> Settings,
    string? CertsDir = null,
    bool Insecure = false)
{
    public static readonly IReadOnlyList<string> KnownRoles = ["coordinator", "worker", "checkpoint"];

    public bool Has(string role) => Roles.Contains(role);
}

/// <summary>A bad command line or configuration: one line on stderr, exit 2.</summary>
public sealed class NodeUsageException(string message) : Exception(message);
