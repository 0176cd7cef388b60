using System.Text.Json;

namespace Orchestrator.IntegrationTests;

[Collection(ClusterCollection.Name)]
public sealed class SchedulingAndRestartTests
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public void Two_jobs_that_each_need_the_whole_cluster_run_one_after_the_other()
    {
        using var cluster = LocalCluster.Up(workers: 1, devicesPerWorker: 2);
        var first = Submit(cluster, Jobs.Mlp("it-gang-a", maxSteps: 300, devicesPerWorker: 2));
        var second = Submit(cluster, Jobs.Mlp("it-gang-b", maxSteps: 300, devicesPerWorker: 2));

        cluster.WaitFor(first, s => s.GetProperty("state").GetString() == "Running", JobTimeout);
        var waiting = cluster.Status(second);
        if (waiting.GetProperty("state").GetString() == "Queued")   // it can only be queued while the first runs
            Assert.Contains("0 free", waiting.GetProperty("message").GetString());

        var a = cluster.WaitFor(first, Ended, JobTimeout);
        var b = cluster.WaitFor(second, Ended, JobTimeout);
        Assert.Equal("Completed", a.GetProperty("state").GetString());
        Assert.Equal("Completed", b.GetProperty("state").GetString());
        Assert.True(DateTimeOffset.Parse(b.GetProperty("startedAt").GetString()!) >= DateTimeOffset.Parse(a.GetProperty("endedAt").GetString()!),
            $"second started {b.GetProperty("startedAt")} before the first ended {a.GetProperty("endedAt")}");
    }

    [Fact]
    public void A_coordinator_killed_with_sigkill_and_restarted_still_has_every_job()
    {
        using var cluster = LocalCluster.Up(workers: 2);
        var done = Submit(cluster, Jobs.Mlp("it-before", maxSteps: 50));
        cluster.WaitFor(done, Ended, JobTimeout);
        var queued = Submit(cluster, Jobs.Mlp("it-queued", maxSteps: 10, devicesPerWorker: 4));
        Assert.Equal("Queued", cluster.Status(queued).GetProperty("state").GetString());

        cluster.Kill9("coordinator");
        cluster.Start("coordinator");

        // The client retries while the restarted singleton comes up.
        var jobs = cluster.Json("list").EnumerateArray().ToList();
        Assert.Single(jobs, j => j.GetProperty("id").GetString() == done);
        Assert.Single(jobs, j => j.GetProperty("id").GetString() == queued);
        Assert.Equal("Completed", cluster.Status(done).GetProperty("state").GetString());
        Assert.Equal("Queued", cluster.Status(queued).GetProperty("state").GetString());

        // The restarted coordinator schedules again: the workers registered with it.
        Assert.Equal(0, cluster.Client("cancel", queued).ExitCode);
        var after = Submit(cluster, Jobs.Mlp("it-after", maxSteps: 50));
        Assert.Equal("Completed", cluster.WaitFor(after, Ended, JobTimeout).GetProperty("state").GetString());
        Assert.NotEqual(done, after);
    }

    private static bool Ended(JsonElement s) => s.GetProperty("state").GetString() is "Completed" or "Failed" or "Cancelled";

    private static string Submit(LocalCluster cluster, string job)
    {
        var result = cluster.Client("submit", job);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout.Trim();
    }
}
