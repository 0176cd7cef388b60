using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace Orchestrator.IntegrationTests;

/// <summary>
/// A real multi-host cluster on one machine: a network namespace per node (its own interface and address,
/// joined to the others by a veth pair and a bridge), a coordinator and three workers with certificates made
/// for their addresses, TLS between them and HTTPS for the job API, which the client reaches from the host.
/// A 2-worker tcp job trains to Completed; in a second job one running worker's link goes down for 20 s: the
/// coordinator marks it down, the job recovers on the spare worker, the cut-off process exits by itself or
/// joins again, and the cluster ends with its one coordinator and its workers. Skipped, with the reason, where this
/// machine refuses namespaces (not root, no <c>ip</c>, a container without the capability).
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class NamespaceClusterTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _id = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()))[..4];
    private readonly int _subnet = Random.Shared.Next(10, 250);
    private readonly string _dir = Directory.CreateTempSubdirectory("orch-netns-").FullName;
    private readonly List<string> _namespaces = [];
    private readonly Dictionary<string, Process> _nodes = new();
    private string Bridge => $"orchbr{_id}";
    private string Ip(int node) => $"10.77.{_subnet}.{node}";
    private string Namespace(int node) => $"orch{_id}n{node}";
    private string HostVeth(int node) => $"ov{_id}{node}";

    [SkippableFact]
    public void A_worker_cut_off_for_20_s_is_marked_down_its_job_recovers_on_a_spare_and_the_cut_off_process_exits_or_joins_again()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "network namespaces are Linux's");
        var refused = Sh("ip netns add orch-probe-" + _id + " && ip netns del orch-probe-" + _id, check: false);
        Skip.If(refused.ExitCode != 0, $"network namespaces refused here (ip netns add: {refused.Stderr.Trim()}{refused.Stdout.Trim()})");

        BuildNetwork(nodes: 4);
        var pki = Path.Combine(_dir, "pki");
        var init = Run("dotnet", NodeDll, "init", "--dir", pki, "--hosts", string.Join(",", Enumerable.Range(1, 4).Select(Ip)));
        Assert.True(init.ExitCode == 0, init.ToString());
        StartNode(1, "coordinator,checkpoint", "--api-port", "8443", "--set", $"orchestrator.api.hostname={Ip(1)}");
        for (int n = 2; n <= 4; n++) StartNode(n, "worker");
        WaitUntil(() => Workers().Count == 3, TimeSpan.FromSeconds(90), "three workers registered");
        Assert.All(Workers(), w => Assert.StartsWith($"akka.ssl.tcp://orchestrator@10.77.{_subnet}.", w));

        // A 2-worker job on the tcp link to Completed, across the namespaces.
        var first = Submit(Jobs.Mlp("netns-first", maxSteps: 300, workers: 2, transport: "tcp"));
        var done = WaitFor(first, s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(180));
        Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());

        // A longer one; once it trains, one of its workers' link goes down for 20 s.
        var job = Submit(Jobs.Mlp("netns-cut", maxSteps: 1400, epochs: 3, workers: 2, transport: "tcp", checkpointEvery: 100));
        var running = WaitFor(job, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() >= 150, TimeSpan.FromSeconds(120));
        var victimAddress = running.GetProperty("workers")[1].GetString()!;
        int victim = Enumerable.Range(2, 3).Single(n => victimAddress.Contains($"@{Ip(n)}:"));
        var coordinatorLogBefore = File.ReadAllText(Path.Combine(_dir, "node-1.log")).Length;
        var clock = Stopwatch.StartNew();
        Sh($"ip link set {HostVeth(victim)} down");
        double? recovering = null, resumed = null, exited = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            var status = Status(job);
            if (recovering is null && status.GetProperty("state").GetString() == "Recovering") recovering = clock.Elapsed.TotalSeconds;
            if (resumed is null && status.GetProperty("state").GetString() == "Running" &&
                status.GetProperty("workers").EnumerateArray().All(w => w.GetString() != victimAddress)) resumed = clock.Elapsed.TotalSeconds;
            if (exited is null && _nodes[$"node-{victim}"].HasExited) exited = clock.Elapsed.TotalSeconds;
            Thread.Sleep(250);
        }
        Sh($"ip link set {HostVeth(victim)} up");
        // The coordinator marked it down; the cut-off worker hears that and exits, or, hearing no coordinator for
        // rejoin-without-coordinator-after, joins again through the seeds as a new member (docs/membership.md).
        var linkUp = clock.Elapsed;
        WaitUntil(() => _nodes[$"node-{victim}"].HasExited || (clock.Elapsed > linkUp + TimeSpan.FromSeconds(30) && Workers().Contains(victimAddress)),
            TimeSpan.FromSeconds(90), "the cut-off worker exits or joins again");
        var rejoined = !_nodes[$"node-{victim}"].HasExited;
        exited ??= rejoined ? null : (double?)clock.Elapsed.TotalSeconds;
        var end = WaitFor(job, s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(240));
        var fate = rejoined ? "joined again as a new member" : $"exited at {exited:F1} s (exit code {_nodes[$"node-{victim}"].ExitCode})";
        var timings = $"link down at 0 s: job Recovering at {(recovering is null ? "(between polls)" : $"{recovering:F1} s")}, Running again without the cut-off worker at {resumed:F1} s, " +
                      $"the cut-off process {fate}; job {end.GetProperty("state")} at step {end.GetProperty("step")}";
        output.WriteLine(timings);
        Console.WriteLine("netns partition: " + timings);
        Assert.True(end.GetProperty("state").GetString() == "Completed", end.ToString());
        Assert.True(end.GetProperty("failures").GetInt32() >= 1, end.ToString());
        Assert.DoesNotContain(victimAddress, end.GetProperty("workers").EnumerateArray().Select(w => w.GetString()));
        Assert.NotNull(resumed);   // (Recovering may pass between two polls: the failure count says it happened)
        // One cluster, one coordinator: the coordinator never left, the two other workers are still registered (and the
        // cut-off one again, if it joined again).
        Assert.False(_nodes["node-1"].HasExited, "the coordinator exited");
        var workers = Workers();
        Assert.Equal(rejoined ? 3 : 2, workers.Count);
        Assert.Equal(rejoined, workers.Contains(victimAddress));
        // (The first seed joins itself once, when the cluster forms; never again after the cut.)
        Assert.DoesNotContain("is JOINING itself", File.ReadAllText(Path.Combine(_dir, "node-1.log"))[coordinatorLogBefore..]);
    }

    private static string NodeDll => Path.Combine(LocalCluster.Root, "src", "Orchestrator.Node", "bin", "Release", "net10.0", "orchestrator-node.dll");

    private void BuildNetwork(int nodes)
    {
        Sh($"ip link add {Bridge} type bridge && ip addr add 10.77.{_subnet}.254/24 dev {Bridge} && ip link set {Bridge} up");
        for (int n = 1; n <= nodes; n++)
        {
            Sh($"ip netns add {Namespace(n)}");
            _namespaces.Add(Namespace(n));
            Sh($"ip link add {HostVeth(n)} type veth peer name eth0 netns {Namespace(n)} && ip link set {HostVeth(n)} master {Bridge} && ip link set {HostVeth(n)} up");
            Sh($"ip -n {Namespace(n)} addr add {Ip(n)}/24 dev eth0 && ip -n {Namespace(n)} link set eth0 up && ip -n {Namespace(n)} link set lo up");
        }
    }

    private void StartNode(int n, string roles, params string[] extra)
    {
        var name = $"node-{n}";
        var configs = new List<string> { "--config", Path.Combine(LocalCluster.Root, "cluster-config", "common.conf") };
        foreach (var role in roles.Split(','))
            configs.AddRange(["--config", Path.Combine(LocalCluster.Root, "cluster-config", role + ".conf")]);
        string[] args = ["netns", "exec", Namespace(n), "dotnet", NodeDll, "--roles", roles, .. configs, "--hostname", Ip(n), "--port", "4053",
            "--certs", Path.Combine(_dir, "pki", "nodes", Ip(n)), "--data-dir", Path.Combine(_dir, "data", name),
            "--seed", $"akka.ssl.tcp://orchestrator@{Ip(1)}:4053", "--seed", $"akka.ssl.tcp://orchestrator@{Ip(2)}:4053",
            "--set", "orchestrator.worker.threads=1", .. extra];
        var start = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (key, value) in Tuning) start.Environment[key] = value;
        var process = Process.Start(start)!;
        var log = new StreamWriter(Path.Combine(_dir, name + ".log")) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _nodes[name] = process;
    }

    // What the scripts set for node processes (README, Troubleshooting).
    private static readonly Dictionary<string, string> Tuning = new()
    {
        ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0", ["DOTNET_GCgen0size"] = "0x4000000",
        ["MALLOC_MMAP_THRESHOLD_"] = "33554432", ["MALLOC_TRIM_THRESHOLD_"] = "1073741824",
    };

    private ProcessResult Client(params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(LocalCluster.Root, "scripts", "orchestrator")) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["ORCHESTRATOR_CONTACT"] = $"https://{Ip(1)}:8443";
        start.Environment["ORCHESTRATOR_CA"] = Path.Combine(_dir, "pki", "client", "ca.crt");
        var tokenFile = Path.Combine(_dir, "data", "node-1", "api-token");
        start.Environment["ORCHESTRATOR_TOKEN"] = File.Exists(tokenFile) ? File.ReadAllText(tokenFile).Trim() : "none-yet";
        start.Environment["ORCHESTRATOR_RUN_DIR"] = Path.Combine(_dir, "no-local-cluster");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000)) { process.Kill(true); throw new TimeoutException($"orchestrator {string.Join(' ', args)}"); }
        return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    private JsonElement Json(params string[] args)
    {
        var result = Client([.. args, "--json"]);
        Assert.True(result.ExitCode == 0, $"orchestrator {string.Join(' ', args)}: {result}");
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    private List<string> Workers()
    {
        var result = Client("workers", "--json");
        return result.ExitCode != 0 ? [] : JsonDocument.Parse(result.Stdout).RootElement.EnumerateArray().Select(w => w.GetProperty("node").GetString()!).ToList();
    }

    private string Submit(string job)
    {
        var result = Client("submit", job);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout.Trim();
    }

    private JsonElement Status(string id) => Json("status", id);

    private JsonElement WaitFor(string id, Func<JsonElement, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var status = Status(id);
            if (done(status)) return status;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {id} after {timeout}: {status}");
            Thread.Sleep(300);
        }
    }

    private static void WaitUntil(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not within {timeout}: {what}");
            Thread.Sleep(500);
        }
    }

    private static ProcessResult Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit(60_000);
        return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static ProcessResult Sh(string command, bool check = true)
    {
        var result = Run("bash", "-c", command);
        if (check && result.ExitCode != 0) throw new InvalidOperationException($"{command}: {result}");
        return result;
    }

    public void Dispose()
    {
        foreach (var process in _nodes.Values)
        {
            try { if (!process.HasExited) process.Kill(); process.WaitForExit(10_000); }
            catch (InvalidOperationException) { }
            process.Dispose();
        }
        foreach (var ns in _namespaces) Sh($"ip netns del {ns}", check: false);
        Sh($"ip link del {Bridge}", check: false);
        if (Environment.GetEnvironmentVariable("ORCH_IT_KEEP") != "1")
            try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
