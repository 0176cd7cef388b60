namespace Orchestrator.Core.Jobs;

/// <summary>
/// Job ids as the job manager makes them (<c>&lt;name&gt;-&lt;sequence&gt;</c>): they name folders on every node,
/// so an id that arrives from the network is checked before any path is made from it.
/// </summary>
public static class JobIds
{
    public static bool IsValid(string? id) =>
        id is { Length: > 0 and <= 200 } && id[0] != '.' && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
}
