using System.Text.Json;

namespace Orchestrator.IntegrationTests;

/// <summary>
/// Two workers of one device each, and a 2 s collective deadline: shorter than the failure detector's
/// (about 4 s after a kill), so a stalled ring is reported by the surviving replica itself before the
/// job runner hears that the node is unreachable and stops it.
/// </summary>
public sealed class TwoWorkerRing : IDisposable
{
    public LocalCluster Cluster { get; } = LocalCluster.Up(workers: 2, devicesPerWorker: 1, "orchestrator.worker.collective-deadline=2s");
    public void Dispose() => Cluster.Dispose();
}

/// <summary>Several workers training one model (PRODUCT.md section 4) through real node processes.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DataParallelTests(TwoWorkerRing fixture) : IClassFixture<TwoWorkerRing>
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(240);
    private readonly LocalCluster _cluster = fixture.Cluster;

    /// <summary>With 16-bit compression, `run` of the same job rounds as the ring does (RingArithmetic): still the same weights.</summary>
    [Theory]
    [InlineData("akka", "none")]
    [InlineData("tcp", "none")]
    [InlineData("akka", "bf16")]
    [InlineData("tcp", "fp16")]
    public void Two_workers_with_batch_32_end_where_one_process_with_batch_64_does(string transport, string compression)
    {
        var job = Jobs.Mlp($"it-eq-{transport}-{compression}", maxSteps: 200, workers: 2, batch: 32, transport: transport, seed: "42", compression: compression);
        var status = RunToEnd(job);
        Assert.Equal(2, status.GetProperty("workers").GetArrayLength());
        var stats = status.GetProperty("workerStats").EnumerateArray().ToList();
        Assert.Equal(2, stats.Count);
        foreach (var s in stats)
        {
            Assert.True(s.GetProperty("samplesPerSecond").GetDouble() > 0, s.ToString());
            Assert.InRange(s.GetProperty("communicationShare").GetDouble(), 0.0, 1.0);
        }
        Assert.True(MaxAbsDiffAgainstRun(job, status) <= 1e-4);
    }

    /// <summary>A team's own model from its package: the example transformer on two workers, as `run` trains it.</summary>
    [Theory]
    [InlineData("akka", "none")]
    [InlineData("tcp", "bf16")]
    public void The_transformer_package_on_two_workers_ends_where_one_process_does(string transport, string compression)
    {
        // 256 KiB buckets: about 13 a step, reduced while backward runs (overlap is on by default), yet the bytes of `run`.
        var job = Jobs.Transformer($"it-lm-{transport}-{compression}", maxSteps: 60, transport: transport, compression: compression, bucketBytes: 256 * 1024);
        var status = RunToEnd(job);
        Assert.Equal("Examples.CharTransformer.CharLanguageModel", status.GetProperty("workload").GetString());
        var metrics = status.GetProperty("metrics");
        double loss = metrics.GetProperty("loss").GetDouble();
        // Untrained, the loss is about ln(vocabulary) = ln(80) = 4.4 nats a character; 60 steps of 16 windows bring it under 3.
        Assert.True(loss < 3.0, $"held-out loss {loss:F3} after 60 steps");
        Assert.Equal(Math.Exp(loss), metrics.GetProperty("perplexity").GetDouble(), 6);
        Assert.Equal(0.0, MaxAbsDiffAgainstRun(job, status));
        // The workload's own line (WorkloadContext.Log) in the job's log, from both workers; and each worker's buckets
        // mostly left during backward (all but those holding the embeddings, which token ids give no mark).
        var logs = _cluster.Json("logs", status.GetProperty("id").GetString()!).EnumerateArray().ToList();
        var counts = logs.Select(l => l.GetProperty("text").GetString()!).Where(t => t.StartsWith("finished:"))
            .Select(t => System.Text.RegularExpressions.Regex.Match(t, @"(\d+) of (\d+) buckets reduced during backward")).Where(m => m.Success).ToList();
        Assert.Equal(2, counts.Count);   // one line from each worker
        Assert.All(counts, m => Assert.True(int.Parse(m.Groups[1].Value) * 2 >= int.Parse(m.Groups[2].Value), m.Value));
        foreach (var rank in new[] { 0, 1 })
            Assert.Contains(logs, l => l.GetProperty("rank").GetInt32() == rank
                && System.Text.RegularExpressions.Regex.IsMatch(l.GetProperty("text").GetString()!, @"GPL-3: \d+ characters, a vocabulary of \d+; \d+ for training"));
    }

    [Fact]
    public void Prometheus_metrics_during_a_two_worker_job_count_its_steps_ring_bytes_checkpoints_and_members_and_need_the_token_on_the_api()
    {
        var id = _cluster.Submit(Jobs.Mlp("it-prom", maxSteps: 900, workers: 2, batch: 32, checkpointEvery: 100));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 250, JobTimeout);

        // The coordinator's metrics on the job API, behind the token; without it, 401 and nothing else.
        using (var stranger = _cluster.Api(withToken: false))
        {
            var refused = stranger.GetAsync("metrics").GetAwaiter().GetResult();
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.DoesNotContain("orchestrator_", refused.Content.ReadAsStringAsync().GetAwaiter().GetResult());
        }
        using var api = _cluster.Api();
        var coordinator = api.GetStringAsync("metrics").GetAwaiter().GetResult();
        var workers = new[] { "worker-1", "worker-2" }.Select(_cluster.ScrapeMetrics).ToList();
        var job = $"job=\"{id}\"";
        Console.WriteLine($"Prometheus, during job {id}:\n" + string.Join("\n", new[] { coordinator }.Concat(workers)
            .SelectMany(t => t.Split('\n')).Where(l => l.StartsWith("orchestrator_") && (l.Contains(id) || !l.Contains("job=")) && !l.Contains("_bucket{"))));

        Assert.True(Sample(coordinator, "orchestrator_job_step", job) > 250);
        Assert.True(Sample(coordinator, "orchestrator_job_samples_per_second", job) > 0);
        Assert.Equal(1, Sample(coordinator, "orchestrator_jobs", "state=\"Running\""));
        Assert.Equal(3, Sample(coordinator, "orchestrator_cluster_members", "status=\"up\",reachable=\"true\""));
        Assert.True(Sample(coordinator, "orchestrator_checkpoint_write_seconds_count") >= 2);
        Assert.True(Sample(coordinator, "orchestrator_checkpoint_evaluation_seconds_count") >= 1);
        // The coordinator's own port serves the same registry, without a token (loopback only).
        Assert.True(Sample(_cluster.ScrapeMetrics("coordinator"), "orchestrator_job_step", job) > 250);
        foreach (var (worker, text) in new[] { "worker-1", "worker-2" }.Zip(workers))
        {
            Assert.True(Sample(text, "orchestrator_worker_steps_total", job) > 200);
            Assert.True(Sample(text, "orchestrator_worker_samples_per_second", job) > 0);
            Assert.True(Sample(text, "orchestrator_allreduce_seconds_count", "link=\"akka\"") > 200);
            // Two workers: each sends 2(n-1)/n = all of its gradient (the mlp's 235,146 float32) once a step. The counters
            // hold every job this worker ran, so what grew between two scrapes of this job (give or take the step being
            // counted while a scrape read the two).
            Thread.Sleep(2000);
            var later = _cluster.ScrapeMetrics(worker);
            var steps = Sample(later, "orchestrator_allreduce_seconds_count", "link=\"akka\"") - Sample(text, "orchestrator_allreduce_seconds_count", "link=\"akka\"");
            var bytes = Sample(later, "orchestrator_allreduce_bytes_total", "link=\"akka\"") - Sample(text, "orchestrator_allreduce_bytes_total", "link=\"akka\"");
            Assert.True(steps > 10, $"{steps} all-reduces in 2 s");
            Assert.True(Math.Abs(bytes - steps * 235_146 * 4) <= 2 * 235_146 * 4, $"{bytes} bytes in {steps} all-reduces");
        }

        var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
        // A job's series go when it ends, so a long-lived cluster does not keep one per job.
        Assert.DoesNotContain(job, api.GetStringAsync("metrics").GetAwaiter().GetResult());
        Assert.True(Sample(api.GetStringAsync("metrics").GetAwaiter().GetResult(), "orchestrator_jobs", "state=\"Completed\"") >= 1);
    }

    [Fact]
    public void A_step_trace_of_a_two_worker_job_has_every_phase_on_every_worker_with_each_bucket_inside_its_step()
    {
        var id = _cluster.Submit(Jobs.Mlp("it-trace", maxSteps: 3700, epochs: 4, workers: 2, batch: 32, checkpointEvery: 100));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 50, JobTimeout);

        var outside = _cluster.Client("trace", id, "--steps", "3698-3705");
        Assert.Equal(2, outside.ExitCode);
        Assert.Contains("the job has 3700 steps, so step 3705 is outside it", outside.Stderr);
        var tooMany = _cluster.Client("trace", id, "--steps", "3500-3600");
        Assert.Equal(2, tooMany.ExitCode);
        Assert.Contains("at most 20 steps", tooMany.Stderr);
        var past = _cluster.Client("trace", id, "--steps", "1-3");
        Assert.Equal(2, past.ExitCode);
        Assert.Contains("has run already", past.Stderr);
        var nowhere = _cluster.Client("trace", id, "--steps", "3600-3602", "--out", Path.Combine(_cluster.Dir, "no-such-folder", "t.json"));
        Assert.Equal(2, nowhere.ExitCode);
        Assert.Contains("does not exist", nowhere.Stderr);
        Assert.Equal(2, _cluster.Client("trace", "no-such-job-1", "--steps", "1-2").ExitCode);
        Assert.Equal(2, _cluster.Client("trace", id, "--steps", "7").ExitCode);

        // A window several seconds ahead of where the job is now, around a checkpoint step (rank 0 captures a snapshot there).
        var now = _cluster.Status(id).GetProperty("step").GetInt64();
        long from = (now + 600) / 100 * 100 - 2, to = from + 4;
        Assert.True(to <= 3700, $"the job is at step {now} already");
        var path = Path.Combine(_cluster.Dir, "trace.json");
        var traced = _cluster.Client("trace", id, "--steps", $"{from}-{to}", "--out", path);
        Assert.True(traced.ExitCode == 0, traced.ToString());
        var events = JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
        var spans = events.Where(e => e.GetProperty("ph").GetString() == "X").Select(e => (
            Pid: e.GetProperty("pid").GetInt32(), Name: e.GetProperty("name").GetString()!, Step: e.GetProperty("args").GetProperty("step").GetInt64(),
            Ts: e.GetProperty("ts").GetInt64(), Dur: e.GetProperty("dur").GetInt64(),
            Bytes: e.GetProperty("args").TryGetProperty("bytes", out var b) ? b.GetInt64() : -1)).ToList();
        // Every span closed (a complete event with a duration), and only the steps asked for.
        Assert.All(spans, s => Assert.InRange(s.Dur, 0, 60_000_000));
        Assert.All(spans, s => Assert.InRange(s.Step, from, to));
        // A track per worker, named.
        Assert.Equal([0, 1], spans.Select(s => s.Pid).Distinct().Order());
        Assert.Contains(events, e => e.GetProperty("ph").GetString() == "M" && e.GetProperty("args").TryGetProperty("name", out var n) && n.GetString()!.StartsWith("rank 1 (127.0.0.1:"));
        foreach (var pid in new[] { 0, 1 })
        {
            var steps = spans.Where(s => s.Pid == pid && s.Name == "step").ToList();
            Assert.NotEmpty(steps);
            foreach (var step in steps)
            {
                var inside = spans.Where(s => s.Pid == pid && s.Step == step.Step && s.Name != "step").ToList();
                Assert.All(inside, s => Assert.True(s.Ts >= step.Ts && s.Ts + s.Dur <= step.Ts + step.Dur + 1, $"{s} outside {step}"));
                foreach (var phase in new[] { "forward", "backward", "gather", "all-reduce", "scatter", "optimizer" })
                    Assert.Single(inside, s => s.Name == phase);
                // The mlp's gradient is one bucket: it sends all of its 235,146 float32 to the neighbour (2 workers), inside the all-reduce.
                var bucket = Assert.Single(inside, s => s.Name == "all-reduce bucket 0");
                Assert.Equal(235_146 * 4, bucket.Bytes);
                var allReduce = inside.Single(s => s.Name == "all-reduce");
                Assert.True(bucket.Ts >= allReduce.Ts && bucket.Ts + bucket.Dur <= allReduce.Ts + allReduce.Dur + 1);
            }
        }
        // Rank 0 captured the checkpoint's snapshot in the traced window.
        Assert.Contains(spans, s => s.Pid == 0 && s.Name == "checkpoint capture" && s.Step % 100 == 0);
        Console.WriteLine($"trace of steps {from}-{to}: {spans.Count} spans, {string.Join(", ", spans.Where(s => s.Pid == 0 && s.Step == to).Select(s => $"{s.Name} {s.Dur} us"))}");

        var done = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
    }

    /// <summary>The value of the sample of <paramref name="name"/> whose labels contain <paramref name="labels"/> (Prometheus text format).</summary>
    private static double Sample(string text, string name, string labels = "")
    {
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name + (labels.Length == 0 ? " " : "{")) && !(labels.Length == 0 && line.StartsWith(name + "{"))) continue;
            if (labels.Length > 0 && !line.Contains(labels)) continue;
            return double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        throw new Xunit.Sdk.XunitException($"no sample {name}{{{labels}}} in:\n{text}");
    }

    [Fact]
    public void A_two_worker_job_reaches_the_accuracy_of_one_worker_with_the_same_global_batch()
    {
        var two = RunToEnd(Jobs.Mlp("it-acc-two", maxSteps: 100_000, workers: 2, batch: 32, transport: "tcp"));
        var one = RunToEnd(Jobs.Mlp("it-acc-one", maxSteps: 100_000, workers: 1, batch: 64));
        var (a2, a1) = (two.GetProperty("accuracy").GetDouble(), one.GetProperty("accuracy").GetDouble());
        Assert.True(Math.Abs(a2 - a1) <= 0.01, $"2 workers {a2:F4}, 1 worker {a1:F4}");
        Assert.True(a2 > 0.8, $"accuracy {a2}");
    }

    [Fact]
    public void A_worker_killed_mid_training_is_named_by_the_other_replica_and_the_job_fails_within_the_deadline()
    {
        // maxFailures 0: this is about detection; recovery has its own tests (RecoveryTests).
        var id = _cluster.Submit(Jobs.Mlp("it-kill", maxSteps: 100_000, epochs: 20, workers: 2, batch: 32, transport: "akka", maxFailures: 0));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 20, JobTimeout);
        try
        {
            var victim = _cluster.Address("worker-2");
            var killedAt = DateTime.UtcNow;
            _cluster.Kill9("worker-2");
            var status = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() != "Running", TimeSpan.FromSeconds(60));
            Assert.Equal("Failed", status.GetProperty("state").GetString());
            Assert.Contains(victim, status.GetProperty("error").GetString());
            Assert.True(DateTime.UtcNow - killedAt < TimeSpan.FromSeconds(40), $"took {DateTime.UtcNow - killedAt}");
            // The surviving replica's own report names the missing rank and its node.
            var log = _cluster.Log("worker-1");
            Assert.True(log.Split('\n').Any(l => l.Contains($"job {id}: training failed") && MissingRank(l, victim)),
                $"job error: {status.GetProperty("error")}\nworker-1's log ends:\n{string.Join('\n', log.Split('\n').TakeLast(15))}");
        }
        finally { RestartIfDown("worker-2"); }
    }

    [Fact]
    public void A_frozen_worker_is_named_within_the_deadline_and_exits_or_joins_again_once_it_is_marked_down()
    {
        var id = _cluster.Submit(Jobs.Mlp("it-freeze", maxSteps: 100_000, epochs: 20, workers: 2, batch: 32, transport: "akka", maxFailures: 0));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 20, JobTimeout);
        var victim = _cluster.Address("worker-2");
        var stoppedAt = DateTime.UtcNow;
        _cluster.Signal("worker-2", "STOP");
        try
        {
            var status = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() != "Running", TimeSpan.FromSeconds(60));
            Assert.Equal("Failed", status.GetProperty("state").GetString());
            Assert.Contains(victim, status.GetProperty("error").GetString());
            Assert.True(DateTime.UtcNow - stoppedAt < TimeSpan.FromSeconds(40), $"took {DateTime.UtcNow - stoppedAt}");
            var log = _cluster.Log("worker-1");
            Assert.True(log.Split('\n').Any(l => l.Contains($"job {id}: training failed") && MissingRank(l, victim)),
                $"job error: {status.GetProperty("error")}\nworker-1's log ends:\n{string.Join('\n', log.Split('\n').TakeLast(15))}");
            // Frozen past the failure detector and stable-after: the coordinator marks it down meanwhile.
            var downedBy = stoppedAt + TimeSpan.FromSeconds(20);
            if (DateTime.UtcNow < downedBy) Thread.Sleep(downedBy - DateTime.UtcNow);
        }
        finally { _cluster.Signal("worker-2", "CONT"); }

        // It exits when it hears it was marked down, or, hearing no coordinator, joins again as a new member.
        if (_cluster.ResumedOutcome("worker-2") == "exited by itself") RestartIfDown("worker-2");
    }

    /// <summary>Ranks follow the order of the workers' addresses, so the victim may be rank 0 or 1: match the node.</summary>
    private static bool MissingRank(string line, string node) =>
        System.Text.RegularExpressions.Regex.IsMatch(line, $@"missing: rank \d+ \({System.Text.RegularExpressions.Regex.Escape(node)}\)");

    /// <summary>The tests of this class share the cluster: one that takes a worker down brings it back, pass or fail.</summary>
    private void RestartIfDown(string node)
    {
        if (_cluster.IsRunning(node)) _cluster.Kill9(node);   // still up after a failed assertion: replace it, it may be downed
        // Start it again once its old incarnation has left the cluster (a new one on the same address may join before
        // that too, MembershipTests; this test is not about that).
        _cluster.WaitUntilRemoved(_cluster.Address(node), TimeSpan.FromSeconds(60));
        _cluster.Start(node);
        _cluster.WaitUntilSettled(2, TimeSpan.FromSeconds(90));
    }

    private JsonElement RunToEnd(string job)
    {
        var id = _cluster.Submit(job);
        var status = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed" or "Cancelled", JobTimeout);
        Assert.True(status.GetProperty("state").GetString() == "Completed", status.ToString());
        return status;
    }

    private double MaxAbsDiffAgainstRun(string job, JsonElement status) => _cluster.MaxAbsDiffAgainstRun(job, status.GetProperty("weights").GetString()!);
}

/// <summary>Two workers of two CPU replicas each: local reduction plus the ring.</summary>
[Collection(ClusterCollection.Name)]
public sealed class LocalDevicesTests
{
    [Fact]
    public void Two_workers_with_two_devices_of_batch_16_end_where_one_process_with_batch_64_does()
    {
        using var cluster = LocalCluster.Up(workers: 2, devicesPerWorker: 2);
        var job = Jobs.Mlp("it-eq-2x2", maxSteps: 200, workers: 2, devicesPerWorker: 2, batch: 16, transport: "tcp", seed: "42");
        var status = cluster.WaitFor(cluster.Submit(job), s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(240));
        Assert.True(status.GetProperty("state").GetString() == "Completed", status.ToString());
        Assert.Equal(4, status.GetProperty("devicesRequested").GetInt32());

        var diff = cluster.MaxAbsDiffAgainstRun(job, status.GetProperty("weights").GetString()!);
        Assert.True(diff <= 1e-4, $"max abs diff {diff}");

        // The same for the transformer package (a smaller shape, to keep the test short).
        var lm = Jobs.Transformer("it-lm-2x2", maxSteps: 40, devicesPerWorker: 2, batch: 4, transport: "tcp",
            shape: """ "layers": 2, "width": 64, "heads": 4, "context": 32 """);
        var lmStatus = cluster.WaitFor(cluster.Submit(lm), s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(240));
        Assert.True(lmStatus.GetProperty("state").GetString() == "Completed", lmStatus.ToString());
        var lmDiff = cluster.MaxAbsDiffAgainstRun(lm, lmStatus.GetProperty("weights").GetString()!);
        Assert.True(lmDiff <= 1e-4, $"transformer 2x2: max abs diff {lmDiff}");
    }
}
