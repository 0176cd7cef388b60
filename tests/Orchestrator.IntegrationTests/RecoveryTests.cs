using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Orchestrator.TestSupport;

namespace Orchestrator.IntegrationTests;

/// <summary>A coordinator and two workers with the shipped timings: failure detector, downing, collective deadline.</summary>
public sealed class RecoveryCluster : IDisposable
{
    public LocalCluster Cluster { get; } = LocalCluster.Up(workers: 2);
    public void Dispose() => Cluster.Dispose();
}

/// <summary>
/// Checkpoints and recovery with real processes (PRODUCT.md sections 5 and 6): a worker killed mid-epoch
/// and replaced, a coordinator killed and restarted, a checkpoint damaged on disk. A recovered job with
/// the same world size follows the uninterrupted trajectory exactly, so its final weights are compared
/// with <c>orchestrator run</c> of the same job file to the bit.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class RecoveryTests(RecoveryCluster fixture) : IClassFixture<RecoveryCluster>
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(300);
    private readonly LocalCluster _cluster = fixture.Cluster;

    private static string Job(string name) =>
        Jobs.Mlp(name, maxSteps: 600, workers: 2, batch: 32, seed: "42", checkpointEvery: 100);

    /// <summary>The example transformer package, small enough to run 600 steps in about the time the mlp takes.</summary>
    private static string TransformerJob(string name) =>
        Jobs.Transformer(name, maxSteps: 600, checkpointEvery: 100, optimizer: """{ "type": "adam", "lr": 0.002 }""",
            shape: """ "layers": 2, "width": 32, "heads": 2, "context": 16 """);

    [Theory]
    [InlineData("mlp")]
    [InlineData("transformer")]
    public void A_worker_killed_mid_epoch_is_replaced_and_the_job_ends_exactly_where_the_uninterrupted_run_does(string model)
    {
        _cluster.WaitUntilSettled(2, TimeSpan.FromSeconds(90));   // after the other test's restarts, if it ran first
        var job = model == "mlp" ? Job("it-recover") : TransformerJob("it-recover-lm");
        var id = _cluster.Submit(job);
        var running = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 150, JobTimeout);
        // Not worker-1: it is a seed node, and the replacement joins through the seeds.
        var victim = running.GetProperty("workers").EnumerateArray().Select(w => w.GetString()!).First(a => a != _cluster.Address("worker-1"));
        var killedAt = Stopwatch.StartNew();
        _cluster.Kill9(_cluster.NodeAt(victim));

        var states = new List<string>();
        var recovering = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Recovering", TimeSpan.FromSeconds(30), states);
        Assert.Contains(victim, recovering.GetProperty("message").GetString());
        Assert.Equal(1, recovering.GetProperty("failures").GetInt32());
        Assert.True(killedAt.Elapsed < TimeSpan.FromSeconds(15), $"Recovering only {killedAt.Elapsed} after the kill");

        _cluster.AddWorker();
        var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout, states);
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
        Assert.Equal(1, done.GetProperty("failures").GetInt32());
        Assert.DoesNotContain(victim, done.GetProperty("workers").EnumerateArray().Select(w => w.GetString()));
        Assert.True(_cluster.Log("coordinator").Contains($"job {id}: generation 2 resumes from the checkpoint at step "), "no resume in the coordinator's log");

        // Same world size, resumed from an exact checkpoint: the uninterrupted run's weights to the bit.
        Assert.Equal(0.0, _cluster.MaxAbsDiffAgainstRun(job, done.GetProperty("weights").GetString()!));

        // Every checkpoint verifies and was evaluated; then the newest is damaged on disk and reported so.
        var checkpoints = _cluster.Json("checkpoints", id).EnumerateArray().ToList();
        Assert.NotEmpty(checkpoints);
        Assert.All(checkpoints, c => Assert.True(c.GetProperty("verified").GetBoolean(), c.ToString()));
        Assert.Equal(600, checkpoints[^1].GetProperty("step").GetInt64());
        var latest = checkpoints[^1].GetProperty("path").GetString()!;
        var bytes = File.ReadAllBytes(latest);
        File.WriteAllBytes(latest, bytes[..^1000]);
        var after = _cluster.Json("checkpoints", id).EnumerateArray().ToList();
        Assert.False(after[^1].GetProperty("verified").GetBoolean());
        Assert.True(after[^2].GetProperty("verified").GetBoolean());
    }

    [Fact]
    public void A_coordinator_killed_during_a_running_job_is_restarted_and_the_job_completes_from_its_checkpoint()
    {
        var (job, id) = RunUntilStep250AndKillTheCoordinator("it-coord");
        _cluster.Start("coordinator");
        var restarted = _cluster.Pid("coordinator");
        // A worker that the new coordinator marks down is started again (LocalCluster.StartAgainWhatGoesDown); the
        // coordinator itself must stay up (docs/membership.md).
        _cluster.StartAgainWhatGoesDown(TimeSpan.FromSeconds(60), "worker-1", "worker-2", "worker-3");
        Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == restarted, "the restarted coordinator went down");

        var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
        var resumed = Regex.Match(_cluster.Log("coordinator"), $@"job {Regex.Escape(id)}: generation \d+ resumes from the checkpoint at step (\d+)");
        Assert.True(resumed.Success, "the restarted coordinator did not resume the job from a checkpoint");
        Assert.True(long.Parse(resumed.Groups[1].Value) >= 200);
        Assert.Equal(0.0, _cluster.MaxAbsDiffAgainstRun(job, done.GetProperty("weights").GetString()!));
        Assert.Single(_cluster.Json("list").EnumerateArray(), j => j.GetProperty("id").GetString() == id);

        // The metrics history outlived the coordinator: the steps reported before the kill, then the ones after, for both
        // workers, with the learning rate and the held-out metrics of the checkpoints.
        var metrics = _cluster.Json("metrics", id);
        var steps = metrics.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("step").GetInt64()).ToList();
        Assert.Contains(steps, s => s > 0 && s <= 250);
        Assert.Equal(600, steps[^1]);
        Assert.Equal(steps.Order(), steps);
        // (A point has each worker as it last reported: right after a start, rank 1 may not have reported yet.)
        Assert.All(metrics.GetProperty("points").EnumerateArray(), p =>
        {
            Assert.InRange(p.GetProperty("workers").GetArrayLength(), 1, 2);
            Assert.Equal(0.05, p.GetProperty("learningRate").GetDouble(), 6);
        });
        Assert.Equal(2, metrics.GetProperty("points").EnumerateArray().Last().GetProperty("workers").GetArrayLength());
        Assert.Contains(metrics.GetProperty("evaluations").EnumerateArray(), e => e.GetProperty("metrics").TryGetProperty("accuracy", out _));

        // TensorBoard's files in the folder that status names, read with our own reader: the same loss at the same step,
        // both workers' throughput, the held-out accuracy; from both coordinator incarnations (a file each).
        var folder = _cluster.Status(id).GetProperty("tensorBoard").GetString()!;
        var scalars = TensorBoardEvents.ReadFolder(folder);
        var last = metrics.GetProperty("points").EnumerateArray().Last();
        Assert.Contains(scalars, s => s.Tag == "train/loss" && s.Step == 600 && s.Value == (float)last.GetProperty("loss").GetDouble());
        Assert.Contains(scalars, s => s.Tag == "train/loss" && s.Step <= 250);
        Assert.Contains(scalars, s => s.Tag == "workers/rank1/samples_per_second" && s.Value > 0);
        Assert.Contains(scalars, s => s.Tag == "heldout/accuracy" && s.Value is > 0 and <= 1);
        Assert.True(Directory.GetFiles(folder, "events.out.tfevents.*").Length >= 2, "one event file per coordinator incarnation");

        // The job's log outlived the coordinator too: both workers' lines of the generation before the kill and of the one
        // after, the runner's of both, in time order; --worker keeps one rank's.
        var logs = _cluster.Json("logs", id).EnumerateArray().ToList();
        // One sequence across the restart: numbers never reused, the requeue after the lines of the first generation.
        var seqs = logs.Select(l => l.GetProperty("seq").GetInt64()).ToList();
        Assert.Equal(seqs.Count, seqs.Distinct().Count());
        string Text(JsonElement l) => l.GetProperty("text").GetString()!;
        long SeqOf(Func<JsonElement, bool> which) => logs.First(which).GetProperty("seq").GetInt64();
        Assert.True(SeqOf(l => Text(l) == "requeued after a coordinator restart") > SeqOf(l => Text(l).StartsWith("generation 1 started on ")));
        int Rank(JsonElement l) => l.GetProperty("rank").GetInt32();
        foreach (var rank in new[] { 0, 1 })
        {
            Assert.Contains(logs, l => Rank(l) == rank && Text(l).StartsWith($"rank {rank} of 2 (generation 1): mlp on "));
            Assert.Contains(logs, l => Rank(l) == rank && Regex.IsMatch(Text(l), $@"^rank {rank} of 2 \(generation [2-9]\).*resuming from the checkpoint at step"));
            Assert.Contains(logs, l => Rank(l) == rank && Text(l).StartsWith("finished: 600 steps"));
        }
        Assert.Contains(logs, l => Rank(l) == -1 && Text(l).StartsWith("generation 1 started on "));
        Assert.Contains(logs, l => Rank(l) == -1 && Text(l) == "requeued after a coordinator restart");
        Assert.Contains(logs, l => Rank(l) == -1 && Text(l).StartsWith("completed, held-out "));
        var rankOne = _cluster.Json("logs", id, "--worker", "1").EnumerateArray().ToList();
        Assert.NotEmpty(rankOne);
        Assert.All(rankOne, l => Assert.Equal(1, Rank(l)));

        // The web page's loss chart (signed in again: sessions live in the coordinator's memory) draws the whole history, the
        // steps from before the kill and the last one.
        if (File.Exists("/usr/bin/chromium"))
        {
            var (firstStep, lastStep, drawn) = WebPageTests.LossChartOf(_cluster, id).GetAwaiter().GetResult();
            Assert.True(firstStep is > 0 and <= 250 && lastStep == 600, $"the chart shows steps {firstStep}-{lastStep}");
            Assert.Equal(metrics.GetProperty("points").GetArrayLength(), drawn);
        }

        // The plot, and --out into a folder that does not exist.
        var png = Path.Combine(_cluster.Dir, "it-coord.png");
        var plot = _cluster.Client("plot", id, "--out", png);
        Assert.True(plot.ExitCode == 0, plot.ToString());
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(png)[..4]);
        var nowhere = _cluster.Client("plot", id, "--out", Path.Combine(_cluster.Dir, "no-such-folder", "x.png"));
        Assert.Equal(2, nowhere.ExitCode);
        Assert.Contains("does not exist", nowhere.Stderr);
    }

    [Fact]
    public void A_coordinator_restarted_into_a_cluster_of_its_own_gets_its_workers_back_and_the_job_completes()
    {
        var (job, id) = RunUntilStep250AndKillTheCoordinator("it-island");
        // The workers that are up now (a test before this one may have killed one and added another).
        var workers = Directory.GetFiles(Path.Combine(_cluster.Dir, "nodes"), "worker-*.pid").Select(f => Path.GetFileNameWithoutExtension(f))
            .Where(_cluster.IsRunning).ToList();
        var logOffsets = workers.Append("coordinator").ToDictionary(n => n, n => _cluster.Log(n).Length);
        // With no time at all to hear from the other seed, the restarted first seed joins itself at once: the
        // island that Akka also forms by itself when the other seed's answers are lost while it drops the old
        // incarnation (its first-seed process only asks others while time is left).
        _cluster.Start("coordinator", "akka.cluster.seed-node-timeout=0s");

        var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
        Assert.Contains("is JOINING itself", _cluster.Log("coordinator")[logOffsets["coordinator"]..]);
        Assert.NotEmpty(workers);
        foreach (var worker in workers)
            Assert.Contains("no reachable coordinator in this cluster", _cluster.Log(worker)[logOffsets[worker]..]);
        Assert.Equal(0.0, _cluster.MaxAbsDiffAgainstRun(job, done.GetProperty("weights").GetString()!));
    }

    private (string Job, string Id) RunUntilStep250AndKillTheCoordinator(string name)
    {
        _cluster.WaitUntilSettled(2, TimeSpan.FromSeconds(90));
        var job = Job(name);
        var id = _cluster.Submit(job);
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 250, JobTimeout);
        _cluster.Kill9("coordinator");
        return (job, id);
    }
}

/// <summary>The checkpoint folder on a 3 MiB tmpfs: room for one mlp checkpoint (about 1.9 MB), not two.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DiskFullTests
{
    [Fact]
    public void A_full_disk_fails_the_snapshot_with_a_clear_message_keeps_the_last_good_checkpoint_and_training_goes_on()
    {
        var mount = Directory.CreateTempSubdirectory("orch-it-tmpfs-").FullName;
        var mounted = Run("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mount);
        Assert.True(mounted.ExitCode == 0, $"mount tmpfs (needs root): {mounted}");
        try
        {
            using var cluster = LocalCluster.Up(workers: 1, devicesPerWorker: 1, $"orchestrator.checkpoint.dir={mount}");
            var job = Jobs.Mlp("it-full", maxSteps: 600, workers: 1, batch: 64, checkpointEvery: 50);
            var id = cluster.Submit(job);

            var full = cluster.WaitFor(id, s => s.GetProperty("message").GetString()?.Contains("failed") == true
                                                || s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(180));
            var message = full.GetProperty("message").GetString() ?? "";
            var failed = Regex.Match(message, @"checkpoint at step (\d+) failed: No space left on device.*the checkpoint at step (\d+)$");
            Assert.True(failed.Success, message);

            var done = cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(180));
            Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
            // One checkpoint fits: the first, whole and verified; none of the failed writes left anything behind.
            var checkpoints = cluster.Json("checkpoints", id).EnumerateArray().ToList();
            var only = Assert.Single(checkpoints);
            Assert.True(only.GetProperty("verified").GetBoolean(), only.ToString());
            Assert.Equal(long.Parse(failed.Groups[2].Value), only.GetProperty("step").GetInt64());
            Assert.True(long.Parse(failed.Groups[1].Value) > only.GetProperty("step").GetInt64());
            Assert.Empty(Directory.GetFiles(mount, "*.tmp-orchestrator", SearchOption.AllDirectories));
        }
        finally
        {
            Run("umount", mount);
            Directory.Delete(mount, recursive: true);
        }
    }

    private static ProcessResult Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEnd();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return new ProcessResult(p.ExitCode, stdout, stderr);
    }
}

/// <summary>Four workers, a 4-worker job that may go on with 3 (minWorkers) and recover once (maxFailures).</summary>
[Collection(ClusterCollection.Name)]
public sealed class ShrinkAndGiveUpTests
{
    [Fact]
    public void A_job_goes_on_with_fewer_workers_down_to_minWorkers_and_fails_with_the_reason_after_maxFailures()
    {
        using var cluster = LocalCluster.Up(workers: 4);
        var job = Jobs.Write("""
            { "name": "it-shrink", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": 4, "epochs": 3,
              "batchSizePerDevice": 16, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 },
              "checkpoint": { "everySteps": 50, "keep": 2, "metric": "accuracy" }, "minWorkers": 3, "maxFailures": 1 }
            """);
        var id = cluster.Submit(job);
        var running = cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 80, TimeSpan.FromSeconds(240));
        string Victim(JsonElement status) =>
            status.GetProperty("workers").EnumerateArray().Select(w => w.GetString()!).First(a => a != cluster.Address("worker-1"));

        // First loss: no spare worker, so the job re-forms its ring with the 3 it has and goes on from its checkpoint.
        var first = Victim(running);
        cluster.Kill9(cluster.NodeAt(first));
        var shrunk = cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("failures").GetInt32() == 1
                                              && s.GetProperty("workers").GetArrayLength() == 3, TimeSpan.FromSeconds(60));
        // Recovering lasts well under a second when workers are at hand: the coordinator's log has it, polling may not.
        Assert.Contains($"job {id}: recovering (1 of at most 1)", cluster.Log("coordinator"));
        Assert.DoesNotContain(first, shrunk.GetProperty("workers").EnumerateArray().Select(w => w.GetString()));
        Assert.Contains($"job {id}: generation 2 resumes from the checkpoint at step ", cluster.Log("coordinator"));
        long resumedAt = shrunk.GetProperty("step").GetInt64();
        var progressed = cluster.WaitFor(id, s => s.GetProperty("step").GetInt64() > resumedAt + 20 || s.GetProperty("state").GetString() != "Running",
            TimeSpan.FromSeconds(120));
        Assert.Equal("Running", progressed.GetProperty("state").GetString());

        // Second loss: maxFailures (1) is spent, so the job fails and says why. It comes once the first
        // node has been marked down and removed, so that the job is running on its three again.
        cluster.WaitUntilRemoved(first, TimeSpan.FromSeconds(60));
        var second = Victim(cluster.Status(id));
        cluster.Kill9(cluster.NodeAt(second));
        var failed = cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Failed" or "Completed", TimeSpan.FromSeconds(60));
        Assert.Equal("Failed", failed.GetProperty("state").GetString());
        var error = failed.GetProperty("error").GetString()!;
        Assert.Contains(second, error);
        Assert.Contains("maxFailures is 1", error);
    }
}
