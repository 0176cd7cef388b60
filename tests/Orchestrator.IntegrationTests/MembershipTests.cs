using System.Text.Json;

namespace Orchestrator.IntegrationTests;

/// <summary>A coordinator and four workers with the shipped timings (failure detector, downing, rejoining).</summary>
public sealed class MembershipCluster : IDisposable
{
    public LocalCluster Cluster { get; } = LocalCluster.Up(workers: 4);
    public void Dispose() => Cluster.Dispose();
}

/// <summary>
/// Coordinator-first downing with real processes (docs/membership.md): the losses that took the coordinator
/// down under Akka's keep-majority resolver (most workers killed at once; a worker frozen and resumed just as
/// the resolver decided; a worker restarted at once on its old address) leave it up with its queue, and the job
/// completes once workers are back. <c>ORCH_FREEZE_SECONDS</c> (default 11,20) lists the freezes to try;
/// <c>scripts/membership-drill.sh</c> runs the whole list.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class MembershipTests(MembershipCluster fixture) : IClassFixture<MembershipCluster>
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(400);
    private readonly LocalCluster _cluster = fixture.Cluster;
    private static readonly string[] AllWorkers = ["worker-1", "worker-2", "worker-3", "worker-4"];

    /// <summary>
    /// All four workers registered and idle, starting again any that exited, as their service manager would: a worker that
    /// rejoins while a peer still holds its old incarnation's association can fail its TLS handshake and be shut down by
    /// Akka (exit 79), or be marked down as unreachable and exit (3); docs/membership.md says why, and the run says so.
    /// </summary>
    private void Settle()
    {
        var restarted = _cluster.SettleRestartingExited(AllWorkers, TimeSpan.FromSeconds(150));
        if (restarted.Count > 0) Console.WriteLine($"started again after exiting: {string.Join("; ", restarted)}");
    }

    private static string Job(string name, int maxSteps) => Jobs.Mlp(name, maxSteps: maxSteps, workers: 2, batch: 32, seed: "42", checkpointEvery: 100);

    [Fact]
    public void Three_of_four_workers_killed_within_2_s_during_a_job_leave_the_coordinator_up_and_the_job_completes_when_they_return()
    {
        Settle();
        var coordinatorPid = _cluster.Pid("coordinator");
        var coordinatorLog = _cluster.Log("coordinator").Length;
        var id = _cluster.Submit(Job("it-three-of-four", maxSteps: 800));
        var running = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 150, JobTimeout);
        var busy = running.GetProperty("workers").EnumerateArray().Select(w => _cluster.NodeAt(w.GetString()!)).ToList();
        // Both of the job's workers and one idle one: the coordinator's side is then a minority of two out of five.
        var victims = busy.Append(AllWorkers.First(w => !busy.Contains(w))).ToList();
        var killed = System.Diagnostics.Stopwatch.StartNew();
        _cluster.Kill9([.. victims]);

        // One comes back at once on its old address, while its old incarnation is still a member.
        _cluster.Start(victims[0]);
        // The coordinator marks the others down (about 12 s after the kill) and stays up with its jobs meanwhile.
        foreach (var victim in victims.Skip(1))
            WaitForLog("coordinator", coordinatorLog, $"marking {_cluster.Address(victim)} down", TimeSpan.FromSeconds(60));
        Console.WriteLine($"three of four workers killed at once ({string.Join(", ", victims)}; {victims[0]} started again at once on its old address): " +
                          $"the coordinator marked the other two down by {killed.Elapsed.TotalSeconds:F1} s after the kill and stayed up");
        Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == coordinatorPid, "the coordinator went down");
        Assert.NotEqual("Failed", _cluster.Status(id).GetProperty("state").GetString());

        foreach (var victim in victims.Skip(1)) _cluster.Start(victim);
        var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
        Assert.True(done.GetProperty("failures").GetInt32() >= 1, done.ToString());
        Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == coordinatorPid, "the coordinator went down");
        Assert.DoesNotContain("marking " + _cluster.Address("coordinator"), _cluster.Log("coordinator")[coordinatorLog..]);
        Assert.Single(_cluster.Json("list").EnumerateArray(), j => j.GetProperty("id").GetString() == id);
        Settle();
    }

    [Fact]
    public void A_worker_frozen_during_a_job_and_resumed_leaves_the_coordinator_up_and_rejoins_or_exits_by_itself()
    {
        var durations = (Environment.GetEnvironmentVariable("ORCH_FREEZE_SECONDS") ?? "11,20")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToList();
        var coordinatorPid = _cluster.Pid("coordinator");
        var outcomes = new List<string>();
        for (var i = 0; i < durations.Count; i++)
        {
            Settle();
            var id = _cluster.Submit(Job($"it-freeze-{durations[i]}", maxSteps: 600));
            var running = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 100, JobTimeout);
            var busy = running.GetProperty("workers").EnumerateArray().Select(w => _cluster.NodeAt(w.GetString()!)).ToList();
            // Alternately an idle worker (resumed about when the coordinator decides about it, at 11 s) and one of the job's.
            var idle = i % 2 == 0;
            var victim = idle ? AllWorkers.First(w => !busy.Contains(w)) : busy[0];
            var frozenPid = _cluster.Pid(victim);
            _cluster.Signal(victim, "STOP");
            try { Thread.Sleep(TimeSpan.FromSeconds(durations[i])); }   // the freeze itself, not a wait for an outcome
            finally { _cluster.Signal(victim, "CONT"); }

            var outcome = _cluster.ResumedOutcome(victim);
            Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == coordinatorPid,
                $"the coordinator went down after {victim} was frozen for {durations[i]} s");
            if (outcome == "exited by itself") _cluster.Start(victim);   // what a service manager does
            var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
            Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
            var line = $"froze {victim} ({(idle ? "idle" : "training")}, pid {frozenPid}) for {durations[i]} s: coordinator up, " +
                       $"job Completed after {done.GetProperty("failures").GetInt32()} recoveries, the worker {outcome}";
            Console.WriteLine(line);
            outcomes.Add(line);
        }
        Assert.Equal(durations.Count, outcomes.Count);
        Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == coordinatorPid, "the coordinator went down");
    }

    [Fact]
    public void A_coordinator_cut_off_from_every_worker_for_30_s_keeps_its_queue_and_the_cluster_ends_with_it_and_its_workers()
    {
        // No standby coordinator: the coordinator marks every worker down and stays up (docs/membership.md, rule 5).
        Settle();
        var coordinatorPid = _cluster.Pid("coordinator");
        var coordinatorLog = _cluster.Log("coordinator").Length;
        var id = _cluster.Submit(Job("it-cut-off", maxSteps: 600));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 100, JobTimeout);
        var pids = AllWorkers.ToDictionary(w => w, _cluster.Pid);
        var frozen = System.Diagnostics.Stopwatch.StartNew();
        foreach (var worker in AllWorkers) _cluster.Signal(worker, "STOP");
        try
        {
            foreach (var worker in AllWorkers)
            {
                WaitForLog("coordinator", coordinatorLog, $"marking {_cluster.Address(worker)} down", TimeSpan.FromSeconds(30));
                _cluster.WaitUntilRemoved(_cluster.Address(worker), TimeSpan.FromSeconds(20));
            }
            Console.WriteLine($"all four workers marked down and removed {frozen.Elapsed.TotalSeconds:F1} s after the freeze began");
            // The job API answers while no worker does; the job waits for workers.
            Assert.Equal("Recovering", _cluster.Status(id).GetProperty("state").GetString());
            var rest = TimeSpan.FromSeconds(30) - frozen.Elapsed;
            if (rest > TimeSpan.Zero) Thread.Sleep(rest);   // the rest of the 30 s freeze itself
        }
        finally
        {
            foreach (var worker in AllWorkers) _cluster.Signal(worker, "CONT");
        }

        // Each worker exits when it hears it was marked down, or joins again through the seeds; a service manager restarts one that exited.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        var back = new Dictionary<string, string>();
        while (back.Count < AllWorkers.Length)
        {
            var members = _cluster.Json("workers").EnumerateArray().Select(w => w.GetProperty("node").GetString()).ToHashSet();
            foreach (var worker in AllWorkers.Where(w => !back.ContainsKey(w)))
                if (!_cluster.IsRunning(worker)) { back[worker] = "exited by itself, started again"; _cluster.Start(worker); }
                else if (members.Contains(_cluster.Address(worker))) back[worker] = $"joined again (pid {pids[worker]})";
            Assert.True(DateTime.UtcNow < deadline, $"workers back after 90 s: {string.Join(", ", back)}");
            Thread.Sleep(500);
        }
        Console.WriteLine($"coordinator cut off from every worker for 30 s: it stayed up; {string.Join("; ", back.Select(b => $"{b.Key} {b.Value}"))}");
        var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
        Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == coordinatorPid, "the coordinator went down");
        Assert.DoesNotContain("is JOINING itself", _cluster.Log("coordinator")[coordinatorLog..]);
        // A worker that came back can still be marked down once more: a fresh incarnation whose links to the coordinator Akka
        // Remote has not yet set up again (its old one's association was gated) is unreachable both ways and goes after
        // stable-after, as any unreachable worker does (seen once in CI). It exits; the service manager starts it again.
        var restarted = _cluster.SettleRestartingExited(AllWorkers, TimeSpan.FromSeconds(150));
        if (restarted.Count > 0) Console.WriteLine($"started again after exiting once more: {string.Join(", ", restarted)}");
        Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == coordinatorPid, "the coordinator went down");
    }

    private void WaitForLog(string node, int from, string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!_cluster.Log(node)[from..].Contains(text))
        {
            Assert.True(DateTime.UtcNow < deadline, $"no '{text}' in {node}'s log within {timeout}; it ends:\n" +
                string.Join('\n', _cluster.Log(node).Split('\n').TakeLast(20)));
            Thread.Sleep(500);
        }
    }
}
