using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Orchestrator.TestSupport;

namespace Orchestrator.IntegrationTests;

/// <summary>A coordinator and two workers whose coordinator takes packages of at most 256 KiB.</summary>
public sealed class PackageCluster : IDisposable
{
    public LocalCluster Cluster { get; } = LocalCluster.Up(workers: 2, devicesPerWorker: 1, "orchestrator.packages.max-bytes=256KiB");
    public void Dispose() => Cluster.Dispose();
}

/// <summary>
/// Workload packages shipped for real: uploaded once by the client, fetched by workers that never saw
/// them, kept across a coordinator kill -9, refused when damaged or too large.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class PackageShippingTests(PackageCluster fixture) : IClassFixture<PackageCluster>
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(180);
    private readonly LocalCluster _cluster = fixture.Cluster;

    private static string SineJob(string name, int workers = 2, string package = "") => Jobs.Write($$"""
        { "name": "{{name}}", "workload": { "package": "{{(package.Length > 0 ? package : Packages.Example("Minimal"))}}", "type": "Examples.Minimal.SineRegression",
          "args": { "samples": 2048 } }, "workers": {{workers}}, "epochs": 2, "batchSizePerDevice": 32, "optimizer": { "type": "adam", "lr": 0.01 } }
        """);

    private string Completed(string id)
    {
        var status = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed" or "Cancelled", JobTimeout);
        Assert.True(status.GetProperty("state").GetString() == "Completed", status.ToString());
        return status.GetProperty("metrics").GetProperty("loss").GetDouble().ToString("R");
    }

    /// <summary>The minimal example with a file of its own: a package no other test uploads.</summary>
    private string UniquePackage(string name)
    {
        var folder = Path.Combine(_cluster.Dir, name);
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(Packages.Example("Minimal"))) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(folder, "build-id.txt"), Guid.NewGuid().ToString());
        return folder;
    }

    [Fact]
    public void Two_jobs_from_one_package_upload_it_once_and_each_worker_fetches_it_once()
    {
        var package = UniquePackage("once");
        var first = _cluster.Client("submit", SineJob("it-pkg-a", package: package));
        Assert.True(first.ExitCode == 0, first.ToString());
        var sha = Regex.Match(first.Stderr, @"package sha256:([0-9a-f]{64}) uploaded \((\d+) bytes\)");
        Assert.True(sha.Success, first.Stderr);
        Assert.InRange(long.Parse(sha.Groups[2].Value), 1, 64 * 1024);   // the example's own files only: kilobytes

        var second = _cluster.Client("submit", SineJob("it-pkg-b", package: package));
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains($"package sha256:{sha.Groups[1].Value} is on the coordinator already (0 bytes sent)", second.Stderr);

        Completed(first.Stdout.Trim());
        Completed(second.Stdout.Trim());
        Assert.Single(Regex.Matches(_cluster.Log("coordinator"), $"package sha256:{sha.Groups[1].Value} stored"));
        foreach (var worker in new[] { "worker-1", "worker-2" })
            Assert.Single(Regex.Matches(_cluster.Log(worker), $"package sha256:{sha.Groups[1].Value} fetched into"));
    }

    [Fact]
    public void A_workload_whose_model_cannot_be_built_fails_the_job_at_once_with_its_message_and_the_workers_stay_up()
    {
        var job = Jobs.Write($$"""
            { "name": "it-pkg-throws", "workload": { "package": "{{Packages.Fixture("BadWorkloads")}}", "type": "Fixtures.ThrowingModel" },
              "workers": 2, "maxSteps": 10 }
            """);
        var started = DateTime.UtcNow;
        var id = _cluster.Submit(job);
        var status = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.Equal("Failed", status.GetProperty("state").GetString());
        Assert.Contains("no such layer type: 'mamba'", status.GetProperty("error").GetString());
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(60), $"failed only after {DateTime.UtcNow - started}");
        Assert.True(_cluster.IsRunning("worker-1") && _cluster.IsRunning("worker-2"));
        Completed(_cluster.Submit(SineJob("it-pkg-after-throws")));   // the workers take the next job
    }

    [Fact]
    public async Task A_package_damaged_in_the_coordinators_store_is_refused_by_the_workers_and_the_job_fails_with_the_reason()
    {
        // Another package than the other tests', so that no worker has it cached.
        var zip = Path.Combine(_cluster.Dir, "damaged.zip");
        ZipFile.CreateFromDirectory(Packages.Example("TensorsClassifier"), zip);
        var bytes = File.ReadAllBytes(zip);
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        using (var api = _cluster.Api())
        {
            var put = await api.PutAsync($"api/v1/packages/{sha}", new ByteArrayContent(bytes));
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }
        var stored = Path.Combine(_cluster.Dir, "data", "coordinator", "packages", sha + ".zip");
        var damaged = File.ReadAllBytes(stored);
        damaged[damaged.Length / 2] ^= 0xFF;
        File.WriteAllBytes(stored, damaged);

        var id = _cluster.Submit(SineJob("it-pkg-damaged", package: "sha256:" + sha));
        var status = _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        Assert.Equal("Failed", status.GetProperty("state").GetString());
        Assert.Contains($"package sha256:{sha} was refused: the bytes received hash to", status.GetProperty("error").GetString());
        Assert.False(Directory.Exists(Path.Combine(_cluster.Dir, "data", "worker-1", "packages", "cache", sha)));
        Assert.True(_cluster.IsRunning("worker-1") && _cluster.IsRunning("worker-2"));
    }

    [Fact]
    public void An_argument_the_workload_refuses_is_refused_at_submit_with_exit_2_and_nothing_is_uploaded_or_queued()
    {
        var job = Jobs.Write($$"""
            { "name": "it-pkg-args", "workload": { "package": "{{UniquePackage("args")}}", "type": "Examples.Minimal.SineRegression",
              "args": { "hidden": 0 } } }
            """);
        int before = _cluster.Json("list").GetArrayLength();
        var result = _cluster.Client("submit", job);
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("invalid job: field 'workload.args.hidden': must be >= 1, was 0", result.Stderr);
        Assert.DoesNotContain("uploaded", result.Stderr);
        Assert.Equal(before, _cluster.Json("list").GetArrayLength());
    }

    [Fact]
    public void A_package_over_the_size_limit_is_refused_at_upload_and_nothing_is_queued()
    {
        var big = Path.Combine(_cluster.Dir, "big-package");
        Directory.CreateDirectory(big);
        foreach (var file in Directory.GetFiles(Packages.Example("Minimal"))) File.Copy(file, Path.Combine(big, Path.GetFileName(file)));
        File.WriteAllBytes(Path.Combine(big, "weights.bin"), RandomNumberGenerator.GetBytes(300 * 1024));   // incompressible
        int before = _cluster.Json("list").GetArrayLength();
        var result = _cluster.Client("submit", SineJob("it-pkg-big", package: big));
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("over the limit of 262144", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.Equal(before, _cluster.Json("list").GetArrayLength());
    }

    [Fact]
    public async Task Hostile_log_trace_and_sign_in_requests_are_refused_before_anything_is_read_or_done()
    {
        using var api = _cluster.Api();
        // The log's paging values are checked before the job is looked up.
        foreach (var (query, field) in new[] { ("since=abc", "since"), ("since=-1", "since"), ("rank=x", "rank"), ("rank=-2", "rank") })
        {
            var answer = await api.GetAsync($"api/v1/jobs/any-job-1/logs?{query}");
            Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
            Assert.Contains($"\"field\":\"{field}\"", await answer.Content.ReadAsStringAsync());
        }
        // A trace request: no JSON, a window that is no number, a body past 1 KiB (stated and chunked).
        foreach (var (body, status) in new[] { ("not json", HttpStatusCode.BadRequest), ("""{ "from": "x", "to": 3 }""", HttpStatusCode.BadRequest),
                                               ($$"""{ "from": 1, "to": 2, "pad": "{{new string('p', 5000)}}" }""", HttpStatusCode.RequestEntityTooLarge) })
        {
            var answer = await api.PostAsync("api/v1/jobs/any-job-1/trace", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(status, answer.StatusCode);
        }
        using (var chunked = new HttpRequestMessage(HttpMethod.Post, "api/v1/jobs/any-job-1/trace")
               { Content = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes($$"""{ "from": 1, "to": 2, "pad": "{{new string('p', 5000)}}" }"""))) })
        {
            chunked.Headers.TransferEncodingChunked = true;
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await api.SendAsync(chunked)).StatusCode);
        }
        // Signing in takes a small URL-encoded form only, from anyone: a large or multipart body is refused unread.
        using var stranger = _cluster.Api(withToken: false, raw: true);
        var multipart = new MultipartFormDataContent { { new ByteArrayContent(new byte[200_000]), "token", "t.bin" } };
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await stranger.PostAsync("ui/login", multipart)).StatusCode);
        var huge = new StringContent("token=" + new string('a', 10_000), System.Text.Encoding.ASCII, "application/x-www-form-urlencoded");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await stranger.PostAsync("ui/login", huge)).StatusCode);
    }

    [Fact]
    public void A_queued_package_job_survives_a_coordinator_kill_and_completes()
    {
        _cluster.WaitUntilSettled(2, TimeSpan.FromSeconds(90));
        var busy = _cluster.Submit(Jobs.Mlp("it-pkg-busy", maxSteps: 300, workers: 2, batch: 32, checkpointEvery: 100));
        // Killed while the busy job trains (as RecoveryTests kill it), not while its workers are still starting.
        _cluster.WaitFor(busy, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 50, JobTimeout);
        var queued = _cluster.Submit(SineJob("it-pkg-queued"));
        Assert.Equal("Queued", _cluster.Status(queued).GetProperty("state").GetString());
        _cluster.Kill9("coordinator");
        _cluster.Start("coordinator");
        var restarted = _cluster.Pid("coordinator");
        // A worker that the new coordinator marks down is started again (see LocalCluster.StartAgainWhatGoesDown).
        _cluster.StartAgainWhatGoesDown(TimeSpan.FromSeconds(60), "worker-1", "worker-2");
        Assert.True(_cluster.IsRunning("coordinator") && _cluster.Pid("coordinator") == restarted, "the restarted coordinator went down");
        Completed(busy);
        Completed(queued);
    }

    [Fact]
    public async Task A_300_KB_job_file_is_refused_with_413_and_the_limit_named_and_nothing_is_queued()
    {
        int before = _cluster.Json("list").GetArrayLength();
        var padding = new string('x', 300 * 1024);
        using var api = _cluster.Api();
        var answer = await api.PostAsync("api/v1/jobs", new StringContent(
            $$"""{ "name": "big", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "padding": "{{padding}}" }""",
            System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, answer.StatusCode);
        Assert.Contains("at most 131072 bytes", await answer.Content.ReadAsStringAsync());
        Assert.Equal(before, _cluster.Json("list").GetArrayLength());
    }

    [Fact]
    public async Task A_malformed_submission_key_or_metrics_step_is_a_400_naming_it_and_nothing_is_queued()
    {
        int before = _cluster.Json("list").GetArrayLength();
        using var api = _cluster.Api();
        foreach (var key in new[] { "../../escape", new string('k', 101), "a b" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/jobs")
            {
                Content = new StringContent("""{ "name": "keyed", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 5 }""",
                    System.Text.Encoding.UTF8, "application/json"),
            };
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
            var answer = await api.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
            Assert.Contains("\"field\":\"Idempotency-Key\"", await answer.Content.ReadAsStringAsync());
        }
        Assert.Equal(before, _cluster.Json("list").GetArrayLength());
        // (The step is checked before the job is looked up.)
        foreach (var since in new[] { "abc", "-3", "99999999999999999999" })
        {
            var answer = await api.GetAsync($"api/v1/jobs/any-job-1/metrics?since={since}");
            Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
            Assert.Contains("\"field\":\"since\"", await answer.Content.ReadAsStringAsync());
        }
    }
}
