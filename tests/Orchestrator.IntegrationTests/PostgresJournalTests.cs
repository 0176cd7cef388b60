using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Orchestrator.IntegrationTests;

/// <summary>
/// A PostgreSQL server of Debian's package in a temp folder (initdb as the postgres user, password authentication, a
/// free port on 127.0.0.1), stopped and removed at the end. <see cref="Unavailable"/> says why there is none here.
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private const string Password = "orchestrator-test-password";
    private readonly string _dir = Directory.CreateTempSubdirectory("orch-pg-").FullName;
    private readonly string? _bin = Directory.Exists("/usr/lib/postgresql")
        ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).FirstOrDefault(b => File.Exists(Path.Combine(b, "initdb")))
        : null;
    private bool _started;

    public int Port { get; } = FreePort();
    public string? Unavailable { get; }

    public PostgresServer()
    {
        if (_bin is null) { Unavailable = "PostgreSQL's server is not installed (apt-get install postgresql; .ci/run does)"; return; }
        if (Run("id", "-u", "postgres").ExitCode != 0) { Unavailable = "no postgres user (Debian's postgresql package makes it)"; return; }
        File.WriteAllText(Path.Combine(_dir, "pw"), Password);
        Run("chown", "-R", "postgres", _dir);
        var init = Run("runuser", "-u", "postgres", "--", Path.Combine(_bin, "initdb"), "-D", Path.Combine(_dir, "data"), "-U", "postgres",
            "--auth=scram-sha-256", "--pwfile=" + Path.Combine(_dir, "pw"));
        if (init.ExitCode != 0) { Unavailable = $"initdb failed (running as the postgres user needs root): {init}"; return; }
        var start = Run("runuser", "-u", "postgres", "--", Path.Combine(_bin, "pg_ctl"), "-D", Path.Combine(_dir, "data"), "-l", Path.Combine(_dir, "server.log"),
            "-o", $"-p {Port} -k {_dir} -c listen_addresses=127.0.0.1", "-w", "start");
        if (start.ExitCode != 0) { Unavailable = $"pg_ctl start failed: {start}"; return; }
        _started = true;
    }

    /// <summary>The node settings (path=value) that put the journal and the snapshots in this server's postgres database.</summary>
    public string[] NodeSettings()
    {
        var connection = $"\"Host=127.0.0.1;Port={Port};Database=postgres;Username=postgres;Password={Password}\"";
        return ["akka.persistence.journal.sql.provider-name=PostgreSQL.15", $"akka.persistence.journal.sql.connection-string={connection}",
                "akka.persistence.snapshot-store.sql.provider-name=PostgreSQL.15", $"akka.persistence.snapshot-store.sql.connection-string={connection}"];
    }

    /// <summary>One value from <paramref name="sql"/>, through psql.</summary>
    public string Scalar(string sql)
    {
        var result = Run(new Dictionary<string, string> { ["PGPASSWORD"] = Password }, Path.Combine(_bin!, "psql"), "-h", "127.0.0.1", "-p", Port.ToString(),
            "-U", "postgres", "-d", "postgres", "-tAc", sql);
        Assert.True(result.ExitCode == 0, $"psql -c {sql}: {result}");
        return result.Stdout.Trim();
    }

    public void Dispose()
    {
        if (_started) Run("runuser", "-u", "postgres", "--", Path.Combine(_bin!, "pg_ctl"), "-D", Path.Combine(_dir, "data"), "-m", "immediate", "-w", "stop");
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static ProcessResult Run(string file, params string[] args) => Run(new Dictionary<string, string>(), file, args);

    private static ProcessResult Run(Dictionary<string, string> environment, string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (key, value) in environment) info.Environment[key] = value;
        try
        {
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(60_000)) { process.Kill(true); return new ProcessResult(-1, "", $"{file} timed out"); }
            return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception ex) { return new ProcessResult(-1, "", $"{file}: {ex.Message}"); }
    }
}

/// <summary>
/// The coordinator's journal in PostgreSQL, as the README shows for a shared deployment, tried for real: the coordinator
/// kill -9 test on it. Every acknowledged job is listed once after the restart, the running job resumes from its
/// checkpoint and completes, the queued one runs, and the events are in PostgreSQL (not in a SQLite file).
/// Skipped, with the reason, where no PostgreSQL server can be started.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class PostgresJournalTests
{
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(300);

    [SkippableFact]
    public void A_coordinator_on_PostgreSQL_killed_during_a_job_comes_back_with_every_acknowledged_job_and_resumes_the_running_one()
    {
        using var postgres = new PostgresServer();
        Skip.If(postgres.Unavailable is not null, postgres.Unavailable);
        using var cluster = LocalCluster.Up(workers: 2, devicesPerWorker: 1, postgres.NodeSettings());

        var running = cluster.Submit(Jobs.Mlp("pg-running", maxSteps: 600, workers: 2, batch: 32, seed: "42", checkpointEvery: 100));
        cluster.WaitFor(running, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 250, JobTimeout);
        var queued = cluster.Submit(Jobs.Mlp("pg-queued", maxSteps: 100, workers: 2, batch: 32));
        cluster.Kill9("coordinator");
        cluster.Start("coordinator");
        var restarted = cluster.Pid("coordinator");
        cluster.StartAgainWhatGoesDown(TimeSpan.FromSeconds(30), "worker-1", "worker-2");

        foreach (var id in new[] { running, queued })
        {
            var done = cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
            Assert.True(done.GetProperty("state").GetString() == "Completed", done.ToString());
        }
        Assert.True(cluster.IsRunning("coordinator") && cluster.Pid("coordinator") == restarted, "the restarted coordinator went down");
        var resumed = Regex.Match(cluster.Log("coordinator"), $@"job {Regex.Escape(running)}: generation \d+ resumes from the checkpoint at step (\d+)");
        Assert.True(resumed.Success, "the restarted coordinator did not resume the running job from a checkpoint");
        var listed = cluster.Json("list").EnumerateArray().Select(j => j.GetProperty("id").GetString()).ToList();
        Assert.Equal([running, queued], listed);

        // The events are PostgreSQL's: the job manager's rows are there, and the coordinator has no SQLite journal.
        var events = int.Parse(postgres.Scalar("select count(*) from journal where persistence_id = 'job-manager'"));
        Assert.True(events >= 6, $"{events} job-manager events in PostgreSQL");
        Assert.Empty(Directory.GetFiles(cluster.Dir, "journal.db", SearchOption.AllDirectories));
        Console.WriteLine($"PostgreSQL journal: {events} job-manager events; after the coordinator's kill -9 the jobs listed were {string.Join(", ", listed)}, " +
                          $"and {running} resumed from step {resumed.Groups[1].Value}");
    }
}
