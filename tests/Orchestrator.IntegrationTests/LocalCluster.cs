using System.Diagnostics;
using System.Text.Json;

namespace Orchestrator.IntegrationTests;

public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
}

/// <summary>
/// A local cluster in its own run folder, started and stopped with the product's scripts, and the
/// client pointed at it through that folder only (no environment, no client.conf). Dispose stops
/// exactly the processes the run folder records, and removes the folder.
/// </summary>
public sealed class LocalCluster : IDisposable
{
    public static readonly string Root = FindRoot();
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "orch-it-" + Guid.NewGuid().ToString("N")[..8]);

    public static LocalCluster Up(int workers, int devicesPerWorker = 1, params string[] settings) => Up(null, workers, devicesPerWorker, settings);

    /// <summary>As <see cref="Up(int, int, string[])"/>, after <paramref name="prepare"/> has had the run folder's path (to mount something in it).</summary>
    public static LocalCluster Up(Action<string>? prepare, int workers, int devicesPerWorker = 1, params string[] settings)
    {
        var cluster = new LocalCluster();
        prepare?.Invoke(cluster.Dir);
        string[] args = ["up", "--workers", workers.ToString(), "--devices-per-worker", devicesPerWorker.ToString(), "--dir", cluster.Dir,
            .. SetArguments(settings)];
        var up = Script(TimeSpan.FromSeconds(180), "local-cluster.sh", args);
        if (up.ExitCode != 0)
        {
            cluster.Dispose();
            throw new InvalidOperationException($"local-cluster.sh up failed: {up}");
        }
        return cluster;
    }

    private static IEnumerable<string> SetArguments(string[] settings) => settings.SelectMany(s => new[] { "--set", s });

    /// <summary>The client (<c>scripts/orchestrator</c>) against this cluster.</summary>
    public ProcessResult Client(params string[] args) => Script(TimeSpan.FromSeconds(120), "orchestrator", args, Dir);

    /// <summary>
    /// An HTTP client for the job API, HTTPS checked against the cluster's own CA as the client does, with the API token
    /// (or without one, to see what a stranger gets).
    /// </summary>
    /// <param name="raw">No redirects followed and no cookie jar (the test sets the Cookie header itself).</param>
    public HttpClient Api(bool withToken = true, bool raw = false)
    {
        var env = ClientEnv();
        var trust = Orchestrator.Core.Security.ClusterTrust.Load(env["ORCHESTRATOR_CA"]);
        var handler = new SocketsHttpHandler { AllowAutoRedirect = !raw, UseCookies = !raw };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            trust.VerifyTls(certificate as System.Security.Cryptography.X509Certificates.X509Certificate2, errors, checkName: true,
                Orchestrator.Core.Security.ClusterTrust.ServerAuthOid, out _);
        var http = new HttpClient(handler) { BaseAddress = new Uri(env["ORCHESTRATOR_CONTACT"].TrimEnd('/') + "/") };
        if (withToken) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", env["ORCHESTRATOR_TOKEN"]);
        return http;
    }

    /// <summary>The run folder's <c>client.env</c>: <c>ORCHESTRATOR_CONTACT</c>, <c>ORCHESTRATOR_TOKEN</c>, <c>ORCHESTRATOR_CA</c>.</summary>
    public Dictionary<string, string> ClientEnv() => File.ReadAllLines(Path.Combine(Dir, "client.env"))
        .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0].Replace("export ", "").Trim(), p => p[1].Trim().Trim('"', '\''));

    /// <summary>A node's Prometheus metrics from its own port (loopback, no token), as text.</summary>
    public string ScrapeMetrics(string node)
    {
        using var http = new HttpClient();
        return http.GetStringAsync(File.ReadAllText(Path.Combine(Dir, "nodes", node + ".metrics")).Trim()).GetAwaiter().GetResult();
    }

    /// <summary>Submits a job file that must be accepted; returns the job id.</summary>
    public string Submit(string job)
    {
        var result = Client("submit", job);
        Assert.True(result.ExitCode == 0, $"submit {job}: {result}");
        return result.Stdout.Trim();
    }

    public JsonElement Json(params string[] args)
    {
        var result = Client([.. args, "--json"]);
        Assert.True(result.ExitCode == 0, $"orchestrator {string.Join(' ', args)} --json: {result}");
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    public JsonElement Status(string id) => Json("status", id);

    /// <summary>Polls the job's status until <paramref name="done"/> holds; fails with the last status after <paramref name="timeout"/>.</summary>
    public JsonElement WaitFor(string id, Func<JsonElement, bool> done, TimeSpan timeout, List<string>? statesSeen = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonElement status;
        while (true)
        {
            status = Status(id);
            var state = status.GetProperty("state").GetString()!;
            if (statesSeen is not null && (statesSeen.Count == 0 || statesSeen[^1] != state)) statesSeen.Add(state);
            if (done(status)) return status;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {id} after {timeout}: {status}");
            Thread.Sleep(300);
        }
    }

    public int Pid(string node) => int.Parse(File.ReadAllText(Path.Combine(Dir, "nodes", node + ".pid")).Trim());

    /// <summary>SIGKILL to every node named, all sent before waiting for any to end (so several die within a moment).</summary>
    public void Kill9(params string[] nodes)
    {
        var processes = nodes.Select(n => Process.GetProcessById(Pid(n))).ToList();
        foreach (var process in processes) process.Kill();   // SIGKILL on Linux
        foreach (var process in processes)
            using (process)
                process.WaitForExit(10_000);
    }

    /// <summary>SIGSTOP or SIGCONT: a frozen node, not a dead one (libc's kill, so no procps is needed).</summary>
    public void Signal(string node, string signal)
    {
        int number = signal switch { "STOP" => 19, "CONT" => 18, _ => throw new ArgumentException(signal) };   // Linux x86-64 and arm64
        Assert.True(kill(Pid(node), number) == 0, $"kill -{signal} {Pid(node)} failed");
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    public bool IsRunning(string node)
    {
        try
        {
            using var p = Process.GetProcessById(Pid(node));
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
    }

    /// <summary>The local cluster's name (worker-2) of the node at <paramref name="address"/>.</summary>
    public string NodeAt(string address) =>
        Directory.GetFiles(Path.Combine(Dir, "nodes"), "*.address").Single(f => File.ReadAllText(f).Trim() == address) is var f
            ? Path.GetFileNameWithoutExtension(f) : throw new InvalidOperationException(address);

    public string Address(string node) => File.ReadAllText(Path.Combine(Dir, "nodes", node + ".address")).Trim();

    /// <summary>Starts a stopped node again as it was, plus <paramref name="settings"/> (path=value) for this start only.</summary>
    public void Start(string node, params string[] settings)
    {
        var result = Script(TimeSpan.FromSeconds(60), "local-cluster.sh", ["start", node, "--dir", Dir, .. SetArguments(settings)]);
        Assert.True(result.ExitCode == 0, $"local-cluster.sh start {node}: {result}");
    }

    /// <summary>
    /// After a coordinator restart: a worker that goes down within <paramref name="window"/> is started once more, with a
    /// line in the test output, as a service manager would. A worker whose stale view of the old coordinator keeps the new
    /// one from hearing it is marked down by the new one (docs/membership.md); the coordinator itself must stay up, so
    /// tests do not name it here.
    /// </summary>
    public void StartAgainWhatGoesDown(TimeSpan window, params string[] nodes)
    {
        var restarted = new HashSet<string>();
        for (var until = DateTime.UtcNow + window; DateTime.UtcNow < until; Thread.Sleep(500))
            foreach (var node in nodes)
            {
                if (!File.Exists(Path.Combine(Dir, "nodes", node + ".pid")) || IsRunning(node) || !restarted.Add(node)) continue;
                Console.WriteLine($"{node} went down after the coordinator's restart (marked down by it); starting it once more");
                Start(node);
            }
    }

    /// <summary>Starts one more worker that joins this cluster (scripts/start-node.sh); returns its name (worker-N).</summary>
    public string AddWorker()
    {
        var before = Directory.GetFiles(Path.Combine(Dir, "nodes"), "worker-*.pid").Select(Path.GetFileNameWithoutExtension).ToHashSet();
        var result = Script(TimeSpan.FromSeconds(60), "start-node.sh", "worker", "--dir", Dir);
        Assert.True(result.ExitCode == 0, $"start-node.sh worker: {result}");
        return Directory.GetFiles(Path.Combine(Dir, "nodes"), "worker-*.pid").Select(Path.GetFileNameWithoutExtension).Single(n => !before.Contains(n))!;
    }

    /// <summary>Trains the job file with <c>orchestrator run</c> (one thread) and returns <c>compare</c>'s max absolute difference to <paramref name="weights"/>.</summary>
    public double MaxAbsDiffAgainstRun(string job, string weights)
    {
        var reference = Path.Combine(Dir, Path.GetFileNameWithoutExtension(job) + ".reference.safetensors");
        if (!File.Exists(reference))
        {
            var run = Client("run", job, "--threads", "1", "--out", reference, "--json");
            Assert.True(run.ExitCode == 0, run.ToString());
        }
        var compare = Client("compare", reference, weights, "--json");
        Assert.True(compare.ExitCode == 0, compare.ToString());
        return JsonDocument.Parse(compare.Stdout).RootElement.GetProperty("maxAbsDiff").GetDouble();
    }

    /// <summary>
    /// Waits until <paramref name="count"/> workers are registered and idle, then a few seconds more:
    /// a node that just (re)joined may still carry a passing unreachability observation in the
    /// gossip, which the coordinator would act on once stable-after has passed.
    /// </summary>
    public void WaitUntilSettled(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var workers = Json("workers").EnumerateArray().ToList();
            if (workers.Count == count && workers.All(w => w.GetProperty("status").GetString() == "idle")) break;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"workers not settled after {timeout}: {string.Join(", ", workers)}");
            Thread.Sleep(500);
        }
        Thread.Sleep(TimeSpan.FromSeconds(5));
    }

    /// <summary>
    /// Waits until every one of <paramref name="workers"/> is a registered, idle worker (then a few seconds more, as
    /// <see cref="WaitUntilSettled"/>), starting again any that exited meanwhile, as a service manager would. Returns the
    /// workers it started, each with the line of its log that says why it had gone.
    /// </summary>
    public IReadOnlyList<string> SettleRestartingExited(IReadOnlyList<string> workers, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var restarted = new List<string>();
        while (true)
        {
            foreach (var worker in workers.Where(w => !IsRunning(w)))
            {
                // Why it went, from its own log (Akka's shutdown reason and exit code, or a crash), so a run that needed this says so.
                var why = Log(worker).Split('\n').LastOrDefault(l => l.Contains("Exiting with") || l.Contains("Unhandled exception") || l.Contains("CoordinatedShutdown"));
                restarted.Add($"{worker} ({why?.Trim() ?? "its log names no reason"})");
                Start(worker);
            }
            var registered = Json("workers").EnumerateArray().ToList();
            var idle = registered.Where(w => w.GetProperty("status").GetString() == "idle").Select(w => w.GetProperty("node").GetString()).ToHashSet();
            if (registered.Count == workers.Count && workers.All(w => idle.Contains(Address(w)))) break;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"workers not settled after {timeout} (started again: {string.Join(", ", restarted)}): {string.Join(", ", registered)}");
            Thread.Sleep(500);
        }
        Thread.Sleep(TimeSpan.FromSeconds(5));
        return restarted;
    }

    /// <summary>
    /// After <paramref name="node"/> was resumed from a freeze (SIGCONT): it either learns that it was marked down and exits by
    /// itself, or stays (or, hearing no coordinator, comes back as) a member. The coordinator decides within stable-after (7 s)
    /// of noticing it, so 30 s after the resume that is settled: a member then is one that stayed or came back. An exit ends
    /// the wait at once. Returns "exited by itself" or "a member again"; fails after 60 s without either.
    /// </summary>
    public string ResumedOutcome(string node)
    {
        var resumed = DateTime.UtcNow;
        while (true)
        {
            if (!IsRunning(node)) return "exited by itself";
            var member = Json("workers").EnumerateArray().Any(w => w.GetProperty("node").GetString() == Address(node));
            if (member && DateTime.UtcNow > resumed + TimeSpan.FromSeconds(30)) return "a member again";
            Assert.True(DateTime.UtcNow < resumed + TimeSpan.FromSeconds(60), $"{node} neither exited nor is a member 60 s after it was resumed");
            Thread.Sleep(500);
        }
    }

    /// <summary>Waits until the job manager no longer lists a worker at <paramref name="address"/> (its node was downed and removed).</summary>
    public void WaitUntilRemoved(string address, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Json("workers").EnumerateArray().Any(w => w.GetProperty("node").GetString() == address))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{address} still a member after {timeout}");
            Thread.Sleep(500);
        }
    }

    public string Log(string node) => File.ReadAllText(Path.Combine(Dir, "logs", node + ".log"));

    public void Dispose()
    {
        try { Script(TimeSpan.FromSeconds(60), "local-cluster.sh", "down", "--dir", Dir); }
        finally
        {
            // Whatever `down` could not stop: the pids this run folder recorded, and nothing else.
            foreach (var file in Directory.Exists(Path.Combine(Dir, "nodes")) ? Directory.GetFiles(Path.Combine(Dir, "nodes"), "*.pid") : [])
            {
                if (!int.TryParse(File.ReadAllText(file).Trim(), out var pid)) continue;
                try
                {
                    using var p = Process.GetProcessById(pid);
                    if (p.ProcessName == "dotnet") p.Kill();
                }
                catch (ArgumentException) { }   // already gone
            }
            // ORCH_IT_KEEP=1 keeps the run folder (logs, data) for a look after a failure.
            if (Environment.GetEnvironmentVariable("ORCH_IT_KEEP") != "1")
                try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
        }
    }

    public static ProcessResult Script(TimeSpan timeout, string script, params string[] args) => Script(timeout, script, args, null);

    private static ProcessResult Script(TimeSpan timeout, string script, string[] args, string? runDir)
    {
        var start = new ProcessStartInfo(Path.Combine(Root, "scripts", script))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var name in new[] { "ORCHESTRATOR_CONTACT", "ORCHESTRATOR_TOKEN", "ORCHESTRATOR_SEEDS" }) start.Environment.Remove(name);
        start.Environment["ORCHESTRATOR_CLIENT_CONFIG"] = "/nonexistent/client.conf";
        if (runDir is not null) start.Environment["ORCHESTRATOR_RUN_DIR"] = runDir;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} {string.Join(' ', args)} still running after {timeout}");
        }
        process.WaitForExit();
        return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln"))) return dir.FullName;
        throw new InvalidOperationException("Orchestrator.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>The cluster tests share the machine's two cores: one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection
{
    public const string Name = "cluster";
}
