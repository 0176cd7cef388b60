using System.Text.Json;

namespace Orchestrator.IntegrationTests;

/// <summary>
/// The durability loop: submits in a loop while the coordinator is killed with kill -9 at seeded random moments and
/// started again after each kill. Every submit that was acknowledged (the client printed an id) must be listed exactly
/// once at the end; no job is listed twice (a submit whose answer was lost is retried by nobody, and a retried one
/// carries its key). <c>ORCH_DURABILITY_SUBMITS</c> (default 24) and <c>ORCH_DURABILITY_SEED</c> (default 17) set the
/// loop; <c>scripts/durability-loop.sh</c> runs 200 submits.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DurabilityTests
{
    [Fact]
    public void Every_acknowledged_submit_survives_coordinator_kills_at_random_moments_exactly_once()
    {
        int submits = int.Parse(Environment.GetEnvironmentVariable("ORCH_DURABILITY_SUBMITS") ?? "24");
        int seed = int.Parse(Environment.GetEnvironmentVariable("ORCH_DURABILITY_SEED") ?? "17");
        var random = new Random(seed);
        // One worker and jobs that need two: every job stays queued, so the loop measures the journal, not training.
        using var cluster = LocalCluster.Up(workers: 1);
        var acknowledged = new List<string>();
        int refused = 0, kills = 0;
        // The kill moments: after a seeded number of submit attempts (2 to 7), so that kills fall before, during and after requests.
        var nextKill = random.Next(2, 8);
        var killer = (Task?)null;
        for (var attempt = 0; attempt < submits; attempt++)
        {
            if (attempt == nextKill && killer is null)
            {
                // The kill lands a seeded 0 to 1500 ms into the next submit, on another thread; the restart follows at once.
                var delay = TimeSpan.FromMilliseconds(random.Next(0, 1500));
                killer = Task.Run(() =>
                {
                    Thread.Sleep(delay);
                    cluster.Kill9("coordinator");
                    cluster.Start("coordinator");
                });
                kills++;
            }
            // A name per attempt: a submit recorded twice would show as one name under two ids.
            var result = cluster.Client("submit", Jobs.Mlp($"dur{attempt}", maxSteps: 10, workers: 2));
            if (result.ExitCode == 0) acknowledged.Add(result.Stdout.Trim());
            else refused++;
            if (killer is not null && attempt > nextKill)
            {
                // One submit in flight at the kill and one while the coordinator is down; then the loop waits for the restart
                // rather than spend its submits on a closed port.
                killer.GetAwaiter().GetResult();   // a failed restart fails the test here
                killer = null;
                nextKill = attempt + random.Next(2, 8);
            }
        }
        killer?.GetAwaiter().GetResult();

        var jobs = cluster.Json("list").EnumerateArray().ToList();
        var listed = jobs.Select(j => j.GetProperty("id").GetString()!).ToList();
        var line = $"durability loop (seed {seed}): {submits} submits, {kills} coordinator kills, {acknowledged.Count} acknowledged, " +
                   $"{refused} refused while the coordinator was down, {listed.Count} listed at the end " +
                   $"({listed.Count - acknowledged.Count} recorded whose answer was lost)";
        Console.WriteLine(line);
        Assert.True(kills >= 2, line);
        Assert.Equal(listed.Count, listed.Distinct().Count());
        var names = jobs.Select(j => j.GetProperty("name").GetString()!).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        foreach (var id in acknowledged) Assert.Single(listed, l => l == id);
        Assert.Equal(acknowledged.Count, acknowledged.Distinct().Count());
    }
}
