using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Orchestrator.IntegrationTests;

/// <summary>A coordinator and two workers, shared by the tests of this class (they run one after another).</summary>
public sealed class TwoWorkerCluster : IDisposable
{
    public LocalCluster Cluster { get; } = LocalCluster.Up(workers: 2);
    public void Dispose() => Cluster.Dispose();
}

[Collection(ClusterCollection.Name)]
public sealed class ClusterJobTests(TwoWorkerCluster fixture) : IClassFixture<TwoWorkerCluster>
{
    private readonly LocalCluster _cluster = fixture.Cluster;

    [Fact]
    public void A_one_worker_job_goes_queued_running_completed_and_equals_the_single_process_run()
    {
        var job = Jobs.Mlp("it-equal", maxSteps: 400);
        var submit = _cluster.Client("submit", job, "--json");
        Assert.True(submit.ExitCode == 0, submit.ToString());
        var accepted = System.Text.Json.JsonDocument.Parse(submit.Stdout).RootElement;
        Assert.Equal("Queued", accepted.GetProperty("state").GetString());
        var id = accepted.GetProperty("id").GetString()!;

        // The job's log, followed from its start until it ends (the command returns by itself then).
        var follow = Task.Run(() => _cluster.Client("logs", id, "--follow"));

        var states = new List<string> { "Queued" };
        var status = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed" or "Cancelled",
            TimeSpan.FromSeconds(120), states);
        Assert.True(status.GetProperty("state").GetString() == "Completed", status.ToString());
        Assert.Equal(["Queued", "Running", "Completed"], states.Distinct());

        // The runner's lines and the worker's, each with its node.
        Assert.True(follow.Wait(TimeSpan.FromSeconds(30)), "logs --follow did not end after the job did");
        Assert.True(follow.Result.ExitCode == 0, follow.Result.ToString());
        Assert.Matches(@"runner 127\.0\.0\.1:\d+ +info +accepted", follow.Result.Stdout);
        Assert.Matches(@"rank 0 127\.0\.0\.1:\d+ +info +rank 0 of 1 \(generation 1\): mlp on ", follow.Result.Stdout);
        Assert.Matches(@"rank 0 127\.0\.0\.1:\d+ +info +finished: 400 steps", follow.Result.Stdout);
        Assert.Matches(@"runner 127\.0\.0\.1:\d+ +info +completed, held-out ", follow.Result.Stdout);

        foreach (var field in new[] { "id", "name", "state", "epoch", "step", "totalSteps", "loss", "samplesPerSecond", "workers", "failures",
                     "error", "latestCheckpoint", "bestCheckpoint", "weights" })
            Assert.True(status.TryGetProperty(field, out _), $"status --json lacks '{field}': {status}");
        Assert.Equal(400, status.GetProperty("step").GetInt64());
        Assert.Equal(1, status.GetProperty("workers").GetArrayLength());
        Assert.StartsWith("akka.ssl.tcp://orchestrator@127.0.0.1:", status.GetProperty("workers")[0].GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, status.GetProperty("error").ValueKind);
        var weights = status.GetProperty("weights").GetString()!;
        Assert.True(File.Exists(weights), weights);

        var list = _cluster.Json("list");
        var entry = list.EnumerateArray().Single(j => j.GetProperty("id").GetString() == id);
        Assert.Equal("it-equal", entry.GetProperty("name").GetString());
        Assert.Equal("Completed", entry.GetProperty("state").GetString());
        // Checkpoints every 500 steps, at epoch ends and after the last step: for 400 steps, one, after the last.
        var checkpoint = Assert.Single(_cluster.Json("checkpoints", id).EnumerateArray());
        Assert.Equal(400, checkpoint.GetProperty("step").GetInt64());
        Assert.True(checkpoint.GetProperty("verified").GetBoolean());

        // The same job file in one process, with the workers' thread count: the same bytes.
        var reference = Path.Combine(_cluster.Dir, "reference.safetensors");
        var run = _cluster.Client("run", job, "--threads", "1", "--out", reference, "--json");
        Assert.True(run.ExitCode == 0, run.ToString());
        var compare = _cluster.Client("compare", reference, weights, "--json");
        Assert.True(compare.ExitCode == 0, compare.ToString());
        var overall = System.Text.Json.JsonDocument.Parse(compare.Stdout).RootElement;
        Assert.Equal(0.0, overall.GetProperty("maxAbsDiff").GetDouble());
        var accuracy = System.Text.Json.JsonDocument.Parse(run.Stdout).RootElement.GetProperty("accuracy").GetDouble();
        Assert.Equal(accuracy, status.GetProperty("accuracy").GetDouble(), 6);
    }

    [Theory]
    [InlineData("{ \"name\": \"bad\", ", "")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" }, \"epochz\": 1 }", "epochz")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"resnet999\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "model")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"mlp\", \"dataset\": { \"name\": \"imagenet-22k\" } }", "dataset.name")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\", \"path\": \"/nonexistent/data\" } }", "dataset.path")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" }, \"batchSizePerDevice\": 0 }", "batchSizePerDevice")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" }, \"epochs\": -1 }", "epochs")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" }, \"optimizer\": { \"lr\": -0.1 } }", "optimizer.lr")]
    [InlineData("{ \"name\": \"bad\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" }, \"devicesPerWorker\": 0 }", "devicesPerWorker")]
    [InlineData("{ \"name\": \"../etc\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "name")]
    public void An_invalid_job_is_rejected_at_submit_with_the_field_named_and_nothing_is_queued(string json, string field)
    {
        int before = _cluster.Json("list").GetArrayLength();
        var result = _cluster.Client("submit", Jobs.Write(json));
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Equal("", result.Stdout);
        Assert.Contains("invalid job", result.Stderr);
        if (field.Length > 0) Assert.Contains($"'{field}'", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);   // no stack trace
        Assert.Equal(before, _cluster.Json("list").GetArrayLength());
    }

    [Fact]
    public void A_job_larger_than_the_cluster_waits_with_the_reason_and_can_be_cancelled()
    {
        var id = Submit(Jobs.Mlp("it-big", maxSteps: 10, devicesPerWorker: 4));
        Thread.Sleep(1000);
        var status = _cluster.Status(id);
        Assert.Equal("Queued", status.GetProperty("state").GetString());
        var message = status.GetProperty("message").GetString()!;
        Assert.Contains("waiting for 4 devices on 1 worker", message);
        Assert.Contains("the cluster has 2 devices on 2 workers", message);

        var cancel = _cluster.Client("cancel", id);
        Assert.True(cancel.ExitCode == 0, cancel.ToString());
        Assert.Equal("Cancelled", _cluster.Status(id).GetProperty("state").GetString());
        var again = _cluster.Client("cancel", id);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already ended", again.Stderr);
    }

    [Fact]
    public void Cancel_stops_a_running_job_within_seconds_and_frees_its_worker()
    {
        var id = Submit(Jobs.Mlp("it-cancel", maxSteps: 100_000, epochs: 50));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 0, TimeSpan.FromSeconds(60));
        var clock = Stopwatch.StartNew();
        var cancel = _cluster.Client("cancel", id);
        Assert.True(cancel.ExitCode == 0, cancel.ToString());
        Assert.Equal("Cancelled", _cluster.Status(id).GetProperty("state").GetString());
        // The worker's compute has really stopped: it reports itself idle again.
        while (_cluster.Json("workers").EnumerateArray().Any(w => w.GetProperty("status").GetString() != "idle"))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"a worker is still busy {clock.Elapsed} after cancel");
            Thread.Sleep(200);
        }
        var step = _cluster.Status(id).GetProperty("step").GetInt64();
        Assert.True(step < 100_000, $"step {step}");
    }

    [Fact]
    public void An_unreachable_contact_or_a_wrong_token_fails_fast_with_the_address_named()
    {
        var clock = Stopwatch.StartNew();
        var unreachable = _cluster.Client("list", "--contact", "http://127.0.0.1:9");
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains("http://127.0.0.1:9", unreachable.Stderr);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");

        var wrongToken = _cluster.Client("list", "--token", "not-the-token-at-all");
        Assert.Equal(1, wrongToken.ExitCode);
        Assert.Contains("401", wrongToken.Stderr);

        var unknown = _cluster.Client("status", "no-such-job-1");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("no-such-job-1", unknown.Stderr);

        // The metrics history and the job's log: an unknown job, an option value that is no value, no token.
        foreach (var (command, badOption, badValue, complaint) in new[]
                 { ("metrics", "--since", "-5", "--since must be a step number"), ("logs", "--worker", "-3", "--worker must be a rank") })
        {
            var missing = _cluster.Client(command, "no-such-job-1");
            Assert.Equal(2, missing.ExitCode);
            Assert.Contains("no job with id 'no-such-job-1'", missing.Stderr);
            var bad = _cluster.Client(command, "no-such-job-1", badOption, badValue);
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains(complaint, bad.Stderr);
            var noToken = _cluster.Client(command, "no-such-job-1", "--token", "not-the-token-at-all");
            Assert.Equal(1, noToken.ExitCode);
            Assert.Contains("401", noToken.Stderr);
        }
    }

    [Fact]
    public void Garbage_sent_to_the_remoting_port_and_the_job_api_leaves_the_coordinator_up()
    {
        var remoting = new Uri(File.ReadAllText(Path.Combine(_cluster.Dir, "nodes", "coordinator.address")).Trim().Replace("akka.ssl.tcp://orchestrator@", "tcp://"));
        var api = int.Parse(File.ReadAllLines(Path.Combine(_cluster.Dir, "cluster.env")).Single(l => l.StartsWith("ORCH_API_PORT=")).Split('=')[1]);
        var random = new Random(11);
        foreach (var port in new[] { remoting.Port, api })
        {
            foreach (var payload in new[]
                     {
                         RandomBytes(random, 4096),
                         "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(),
                         [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03],   // a TLS ClientHello cut short
                         [0x00, 0x00, 0xff, 0xff, 0x7f],                                         // a frame length far past the limit
                     })
            {
                using var client = new System.Net.Sockets.TcpClient();
                client.Connect("127.0.0.1", port);
                try { client.GetStream().Write(payload); } catch (IOException) { }   // the node may drop us: fine
                Thread.Sleep(200);
            }
        }
        Thread.Sleep(1000);
        Assert.True(_cluster.Client("list").ExitCode == 0, "the job API stopped answering");
        Assert.Equal(2, _cluster.Json("workers").GetArrayLength());
        var id = Submit(Jobs.Mlp("it-after-garbage", maxSteps: 20));
        Assert.Equal("Completed", _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(60))
            .GetProperty("state").GetString());
    }

    private static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    private string Submit(string job)
    {
        var result = _cluster.Client("submit", job);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Matches(new Regex(@"^\S+\n$"), result.Stdout);
        return result.Stdout.Trim();
    }
}
