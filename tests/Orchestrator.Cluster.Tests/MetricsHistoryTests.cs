using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Metrics;
using Orchestrator.Core.Settings;
using Orchestrator.TestSupport;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>A job's metrics history: bounded by thinning the older half, rewound by a recovery, paged.</summary>
public sealed class MetricsHistoryTests
{
    private static MetricsPoint Point(long step, double loss = 1.0) =>
        new(step, 1, loss, 0.05, 1000, 0.1, 1_000_000 + step, [new WorkerStat("a", 0, step, 500, 0.1), new WorkerStat("b", 1, step, 500, 0.12)]);

    [Fact]
    public void A_long_job_stays_within_the_limit_with_recent_steps_dense_and_the_first_and_last_kept()
    {
        var history = new MetricsHistory(100);
        for (long step = 1; step <= 10_000; step++) history.Add(Point(step));
        Assert.InRange(history.Points.Count, 50, 100);
        Assert.Equal(1, history.Points[0].Step);
        Assert.Equal(10_000, history.Points[^1].Step);
        Assert.True(history.Points.Zip(history.Points.Skip(1)).All(p => p.Item1.Step < p.Item2.Step));
        // The newest quarter is every step; the oldest points are far apart.
        Assert.Equal(Enumerable.Range(10_000 - 24, 25).Select(s => (long)s), history.Points.TakeLast(25).Select(p => p.Step));
        Assert.True(history.Points[1].Step - history.Points[0].Step > 100);
    }

    [Fact]
    public void A_recovered_job_that_steps_back_to_its_checkpoint_replaces_the_steps_it_repeats()
    {
        var history = new MetricsHistory(100);
        foreach (var step in new long[] { 10, 20, 30, 40 }) Assert.False(history.Add(Point(step)));
        Assert.True(history.Add(Point(25, loss: 0.5)));   // resumed from the checkpoint at step 20
        Assert.Equal([10L, 20, 25], history.Points.Select(p => p.Step));
        Assert.Equal(0.5, history.Points[^1].Loss);
    }

    [Fact]
    public void Points_come_a_page_at_a_time_after_a_step_and_evaluations_one_per_step()
    {
        var history = new MetricsHistory(100);
        for (long step = 1; step <= 25; step++) history.Add(Point(step));
        var (first, more) = history.After(-1, 10);
        Assert.Equal((1L, 10L, true), (first[0].Step, first[^1].Step, more));
        var (last, none) = history.After(20, 10);
        Assert.Equal((21L, 25L, false), (last[0].Step, last[^1].Step, none));

        Assert.True(history.Add(new EvaluationPoint(10, new Dictionary<string, double> { ["accuracy"] = 0.8 })));
        Assert.False(history.Add(new EvaluationPoint(10, new Dictionary<string, double> { ["accuracy"] = 0.8 })));
        Assert.True(history.Add(new EvaluationPoint(10, new Dictionary<string, double> { ["accuracy"] = 0.81 })));
        Assert.Equal(0.81, Assert.Single(history.Evaluations).Metrics["accuracy"]);

        // Bounded too, the newest kept; and a page holds fewer points the more workers they carry.
        for (long step = 11; step <= 3000; step++) history.Add(new EvaluationPoint(step, new Dictionary<string, double> { ["accuracy"] = 0.5 }));
        Assert.InRange(history.Evaluations.Count(), 500, MetricsHistory.EvaluationLimit);
        Assert.Equal(3000, history.Evaluations.Last().Step);
        Assert.Equal(MetricsRecorder.Page, MetricsRecorder.PageFor(2));
        Assert.InRange(MetricsRecorder.PageFor(64), 1, 30);
    }
}

/// <summary>The recorder's files: what one recorder wrote, the next (a restarted coordinator's) reads.</summary>
public sealed class MetricsRecorderSpec() : TestKit(SystemConfig), IDisposable
{
    /// <summary>A test system for a recorder (the job manager's children): shipped defaults, any port, nothing that ends the test host.</summary>
    public static readonly Config SystemConfig = ConfigurationFactory.ParseString("""
        akka.remote.dot-netty.tcp.port = 0
        akka.coordinated-shutdown.exit-clr = off
        akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
        """).WithFallback(OrchestratorSettings.DefaultConfig());

    private readonly string _dir = Directory.CreateTempSubdirectory("orch-metrics-spec-").FullName;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_history_written_by_one_recorder_is_read_by_the_next_with_its_evaluations_and_a_torn_last_line_is_skipped()
    {
        var first = Sys.ActorOf(MetricsRecorder.Props(_dir, Path.Combine(_dir, "tensorboard")), "first");
        for (long step = 1; step <= 5; step++)
            first.Tell(new MetricsRecorder.Record("job-1", new MetricsPoint(step, 1, 2.0 / step, double.NaN, 900, 0.2, 1_700_000_000_000 + 1000 * step, [new WorkerStat("a", 0, step, 900, 0.2)])));
        first.Tell(new MetricsRecorder.RecordEvaluations("job-1", [new EvaluationPoint(5, new Dictionary<string, double> { ["loss"] = 0.4 })]));
        first.Tell(new GetJobMetrics("job-1", -1));
        Assert.Equal(5, (await ExpectMsgAsync<JobMetrics>(Wait)).Points.Count);
        Watch(first);
        Sys.Stop(first);
        await ExpectTerminatedAsync(first, Wait);
        // A crash in the middle of an append.
        File.AppendAllText(Path.Combine(_dir, "job-1.points.jsonl"), "{\"step\":6,\"epo");

        var next = Sys.ActorOf(MetricsRecorder.Props(_dir), "next");
        next.Tell(new GetJobMetrics("job-1", 2));
        var metrics = await ExpectMsgAsync<JobMetrics>(Wait);
        Assert.Equal([3L, 4, 5], metrics.Points.Select(p => p.Step));
        Assert.True(double.IsNaN(metrics.Points[0].LearningRate));
        Assert.Equal("a", metrics.Points[0].Workers.Single().Node);
        Assert.Equal(0.4, Assert.Single(metrics.Evaluations).Metrics["loss"]);
        Assert.False(metrics.More);

        // TensorBoard's files, read with our own reader: every reported loss at its step, the held-out loss at the checkpoint's.
        var scalars = TensorBoardEvents.ReadFolder(MetricsRecorder.TensorBoardFolder(Path.Combine(_dir, "tensorboard"), "job-1"));
        Assert.Equal(Enumerable.Range(1, 5).Select(s => ((long)s, (float)(2.0 / s))),
            scalars.Where(s => s.Tag == "train/loss").Select(s => (s.Step, s.Value)));
        Assert.Equal((5L, 0.4f), scalars.Where(s => s.Tag == "heldout/loss").Select(s => (s.Step, s.Value)).Single());
        Assert.Equal(5, scalars.Count(s => s.Tag == "workers/rank0/samples_per_second" && s.Value == 900));
        Assert.DoesNotContain(scalars, s => s.Tag == "train/learning_rate");   // NaN is left out
        Assert.Equal(1_700_000_001, scalars.First(s => s.Tag == "train/loss").WallTime, 0);   // Unix seconds
    }

    void IDisposable.Dispose()
    {
        Shutdown();
        Directory.Delete(_dir, recursive: true);
    }
}
