using Orchestrator.Cluster.Coordinator;
using Orchestrator.Cluster.Packages;
using static Orchestrator.Core.Protocol.JobEvents;

namespace Orchestrator.Cluster.Tests;

public sealed class PackageRetentionTests
{
    private static string Hash(char c) => new(c, 64);

    private static string Job(char package) =>
        $$"""{ "name": "lm", "workload": { "package": "sha256:{{Hash(package)}}", "type": "A.B" } }""";

    [Fact]
    public void A_package_goes_only_when_no_job_has_referred_to_it_for_the_retention_period_and_it_is_older_than_that()
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(10 * 86_400_000L);
        var day = TimeSpan.FromDays(1);
        long Ms(TimeSpan ago) => (now - ago).ToUnixTimeMilliseconds();
        var book = JobBook.Empty
            .Apply(new JobSubmitted("running-1", 1, Job('a'), Ms(3 * day)))          // still running: its package stays
            .Apply(new JobSubmitted("old-2", 2, Job('b'), Ms(5 * day)))
            .Apply(new JobFailed("old-2", "x", Ms(2 * day)))                         // ended two days ago: its package may go
            .Apply(new JobSubmitted("recent-3", 3, Job('c'), Ms(5 * day)))
            .Apply(new JobCancelled("recent-3", Ms(TimeSpan.FromHours(2))))            // ended two hours ago: kept
            .Apply(new JobSubmitted("builtin-4", 4, """{ "name": "fm", "model": "mlp", "dataset": { "name": "mnist" } }""", Ms(day)));
        DateTime Stored(TimeSpan ago) => (now - ago).UtcDateTime;
        var stored = new[]
        {
            (Hash('a'), Stored(4 * day)), (Hash('b'), Stored(6 * day)), (Hash('c'), Stored(6 * day)),
            (Hash('d'), Stored(TimeSpan.FromHours(1))),   // uploaded, no job yet: kept
            (Hash('e'), Stored(3 * day)),                  // nobody's: goes
        };
        Assert.Equal([Hash('b'), Hash('e')], PackageRetention.Expired(stored, book, now, day));
    }
}
