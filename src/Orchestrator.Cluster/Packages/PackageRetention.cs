using Orchestrator.Cluster.Coordinator;

namespace Orchestrator.Cluster.Packages;

/// <summary>
/// Which stored packages may go: those no job refers to any more. A job refers to its package while it
/// has not ended and for <c>retention</c> after it ended (so its checkpoints can still be evaluated and
/// it can be looked at); a package is also kept for <c>retention</c> after it was stored, so that one
/// uploaded for a job not yet submitted is not swept away.
/// </summary>
public static class PackageRetention
{
    public static IReadOnlyList<string> Expired(IEnumerable<(string Sha256, DateTime StoredAt)> stored, JobBook book, DateTimeOffset now, TimeSpan retention)
    {
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var job in book.Jobs)
        {
            if (job.EndedAt is { } ended && now - ended > retention) continue;
            if (job.Package is { } sha) referenced.Add(sha);
        }
        return stored.Where(p => !referenced.Contains(p.Sha256) && now - new DateTimeOffset(p.StoredAt, TimeSpan.Zero) > retention)
            .Select(p => p.Sha256).ToList();
    }
}
