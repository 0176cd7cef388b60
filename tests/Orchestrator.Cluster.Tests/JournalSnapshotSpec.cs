using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Sql;
using Akka.TestKit.Xunit2;
using Microsoft.Data.Sqlite;
using Orchestrator.Cluster.Coordinator;
using Orchestrator.Core.Settings;
using Xunit.Abstractions;
using static Orchestrator.Core.Protocol.JobEvents;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>
/// Journal snapshots on the journal the node ships (SQLite in WAL mode through Akka.Persistence.Sql): a history of
/// finished jobs written as events, a job manager that replays it all once and saves a snapshot, and the next one that
/// starts from the snapshot with nothing after it; both see the same jobs. Prints both recovery times.
/// <c>ORCH_SNAPSHOT_JOBS</c> (default 2000) sets the history's length (the closing note's figures: 10000).
/// </summary>
public sealed class JournalSnapshotSpec(ITestOutputHelper output) : TestKit(Config), IDisposable
{
    private static readonly string Dir = Directory.CreateTempSubdirectory("orch-snapshot-spec-").FullName;

    private static Config Config
    {
        get
        {
            foreach (var file in new[] { "journal.db", "snapshots.db" })
            {
                using var db = new SqliteConnection($"Data Source={Path.Combine(Dir, file)}");
                db.Open();
                using var wal = db.CreateCommand();
                wal.CommandText = "PRAGMA journal_mode=WAL;";
                wal.ExecuteScalar();
            }
            return ConfigurationFactory.ParseString($$"""
                akka.remote.dot-netty.tcp.port = 0
                akka.remote.dot-netty.tcp.hostname = 127.0.0.1
                akka.coordinated-shutdown.exit-clr = off
                akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
                akka.loglevel = INFO
                akka.persistence.journal.plugin = "akka.persistence.journal.sql"
                akka.persistence.journal.sql { connection-string = "Data Source={{Path.Combine(Dir, "journal.db")}}", provider-name = "SQLite.MS", auto-initialize = on }
                akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
                akka.persistence.snapshot-store.sql { connection-string = "Data Source={{Path.Combine(Dir, "snapshots.db")}}", provider-name = "SQLite.MS", auto-initialize = on }
                """).WithFallback(OrchestratorSettings.DefaultConfig()).WithFallback(SqlPersistence.DefaultConfiguration);
        }
    }

    private const string Spec = """{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 5 }""";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);

    /// <summary>Writes events under the job manager's persistence id, as a long-lived coordinator would have.</summary>
    private sealed class History : ReceivePersistentActor
    {
        public override string PersistenceId => JobManager.PersistenceIdValue;

        public History(int jobs)
        {
            Recover<object>(_ => { });
            Command<string>(_ =>
            {
                var replyTo = Sender;
                for (var batch = 0; batch < jobs; batch += 500)
                {
                    var events = Enumerable.Range(batch + 1, Math.Min(500, jobs - batch)).SelectMany(n => new Core.Protocol.IOrchestratorMessage[]
                    {
                        new JobSubmitted($"fm-{n}", n, Spec, 1_000_000 + n, $"key-{n}"),
                        new JobStarted($"fm-{n}", ["akka.ssl.tcp://orchestrator@10.0.0.2:4053"], 1_000_100 + n),
                        new JobCompleted($"fm-{n}", 0.8, 0.5, 5, 1, 1000, $"/data/jobs/fm-{n}/weights.safetensors", 1_000_200 + n),
                    }).ToList();
                    var last = batch + 500 >= jobs;
                    PersistAll(events, _ => { if (last && LastSequenceNr == 3L * jobs) replyTo.Tell("written"); });
                }
            });
        }
    }

    [Fact]
    public async Task A_restart_after_a_long_history_reads_a_snapshot_and_nothing_after_it_and_sees_the_same_jobs()
    {
        int jobs = int.Parse(Environment.GetEnvironmentVariable("ORCH_SNAPSHOT_JOBS") ?? "2000");
        var history = Sys.ActorOf(Props.Create(() => new History(jobs)), "history");
        history.Tell("write");
        await ExpectMsgAsync("written", Wait);
        Watch(history);
        Sys.Stop(history);
        await ExpectTerminatedAsync(history, Wait);

        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        // The first job manager replays every event, then saves a snapshot (the replay was longer than snapshot-every).
        var clock = Stopwatch.StartNew();
        IActorRef first = ActorRefs.Nobody;
        JobList before = null!;
        await EventFilter.Info(contains: $"saved a snapshot of {jobs} job(s) at journal position {3 * jobs}").ExpectOneAsync(Wait, async () =>
        {
            first = Sys.ActorOf(JobManager.Props(settings.Coordinator, settings.Packages), "first");
            first.Tell(ListJobs.Instance);
            before = await ExpectMsgAsync<JobList>(Wait);
        });
        var fromEvents = clock.Elapsed;
        Watch(first);
        Sys.Stop(first);
        await ExpectTerminatedAsync(first, Wait);

        // The next one starts from the snapshot, with no event after it.
        JobList after = null!;
        TimeSpan fromSnapshot = default;
        await EventFilter.Info(contains: $"from a snapshot at journal position {3 * jobs} and 0 event(s) after it").ExpectOneAsync(Wait, async () =>
        {
            clock.Restart();
            var second = Sys.ActorOf(JobManager.Props(settings.Coordinator, settings.Packages), "second");
            second.Tell(ListJobs.Instance);
            after = await ExpectMsgAsync<JobList>(Wait);
            fromSnapshot = clock.Elapsed;
            // What the events said is what the snapshot says: a job's status and its submission key.
            second.Tell(new GetJob($"fm-{jobs}"));
            var status = await ExpectMsgAsync<JobStatus>(Wait);
            Assert.Equal(("Completed", 5L), (status.State, status.Step));
            second.Tell(new SubmitJob(Spec, "key-1"));
            Assert.Equal("fm-1", (await ExpectMsgAsync<JobAccepted>(Wait)).Id);
        });
        Assert.Equal(jobs, before.Jobs.Count);
        Assert.Equal(before.Jobs, after.Jobs);
        var line = $"job manager recovery with {jobs} finished jobs: from {3 * jobs} events {fromEvents.TotalMilliseconds:F0} ms " +
                   $"(then a snapshot was saved); from the snapshot {fromSnapshot.TotalMilliseconds:F0} ms";
        output.WriteLine(line);
        Console.WriteLine(line);
    }

    void IDisposable.Dispose()
    {
        Shutdown();
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
