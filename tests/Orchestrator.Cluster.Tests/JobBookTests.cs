using Orchestrator.Cluster.Coordinator;
using static Orchestrator.Core.Protocol.JobEvents;

namespace Orchestrator.Cluster.Tests;

public sealed class JobBookTests
{
    private const string Spec = """{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "devicesPerWorker": 2, "epochs": 3 }""";

    [Fact]
    public void Events_drive_a_job_through_its_states_and_the_queue_is_first_in_first_out()
    {
        var book = JobBook.Empty
            .Apply(new JobSubmitted("fm-1", 1, Spec, 1000))
            .Apply(new JobSubmitted("fm-2", 2, Spec, 2000));
        Assert.Equal(["fm-1", "fm-2"], book.Queue.Select(j => j.Id));
        var first = book.Find("fm-1")!;
        Assert.Equal((1, 2, 3, 2), (first.Workers, first.DevicesPerWorker, first.Epochs, first.DevicesRequested));

        book = book.Apply(new JobStarted("fm-1", ["node-a"], 3000));
        Assert.Equal(["fm-2"], book.Queue.Select(j => j.Id));
        Assert.Equal(JobState.Running, book.Find("fm-1")!.State);
        book = book.WithProgress("fm-1", new JobProgress(1, 3, 10, 100, 0.5, 1000, []));
        Assert.Equal(10, book.Find("fm-1")!.Progress!.Step);

        book = book.Apply(new JobCompleted("fm-1", 0.85, 0.4, 100, 3, 1000, "/w.safetensors", 4000))
                   .Apply(new JobCancelled("fm-2", 5000));
        var done = book.Find("fm-1")!;
        Assert.Equal((JobState.Completed, 0.85, "/w.safetensors", 100L), (done.State, done.Accuracy!.Value, done.Weights, done.Steps));
        Assert.Equal(JobState.Cancelled, book.Find("fm-2")!.State);
        Assert.Empty(book.Queue);
        Assert.Equal(2, book.LastSequence);
    }

    [Fact]
    public void A_requeued_job_goes_back_to_its_place_in_the_queue_and_keeps_its_attempts_for_the_next_generation()
    {
        var book = JobBook.Empty
            .Apply(new JobSubmitted("fm-1", 1, Spec, 1000))
            .Apply(new JobSubmitted("fm-2", 2, Spec, 2000))
            .Apply(new JobStarted("fm-1", ["node-a"], 3000))
            .WithProgress("fm-1", new JobProgress(1, 3, 10, 100, 0.5, 1000, []))
            .Apply(new JobRequeued("fm-1", "restart", 4000));
        var job = book.Find("fm-1")!;
        Assert.Equal((JobState.Queued, 0, "restart"), (job.State, job.AssignedNodes.Count, job.Interruption));
        Assert.Equal(2, job.NextGeneration);   // the ring of the restarted run is told apart from the old one's
        Assert.Equal(["fm-1", "fm-2"], book.Queue.Select(j => j.Id));
    }

    [Fact]
    public void A_recovering_job_counts_its_failure_waits_ahead_of_the_queue_and_starts_a_new_generation()
    {
        var spec = """{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": 3, "minWorkers": 2, "maxFailures": 2 }""";
        var book = JobBook.Empty
            .Apply(new JobSubmitted("fm-1", 1, spec, 1000))
            .Apply(new JobSubmitted("fm-2", 2, Spec, 2000))
            .Apply(new JobStarted("fm-1", ["a", "b", "c"], 3000))
            .Apply(new JobRecovering("fm-1", "worker c is unreachable", 4000));
        var job = book.Find("fm-1")!;
        Assert.Equal((JobState.Recovering, 1, 2, 2, 0), (job.State, job.Failures, job.MaxFailures, job.MinWorkers, job.AssignedNodes.Count));
        Assert.True(job.IsActive);
        Assert.Equal(["fm-1", "fm-2"], book.Waiting.Select(j => j.Id));
        Assert.Equal(2, job.NextGeneration);

        book = book.Apply(new JobStarted("fm-1", ["a", "b"], 5000));
        job = book.Find("fm-1")!;
        Assert.Equal((JobState.Running, 3, 1), (job.State, job.NextGeneration, job.Failures));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(3000), job.StartedAt);   // the job's start, not the generation's
    }

    [Fact]
    public void A_journalled_spec_that_no_longer_validates_is_kept_as_failed_not_dropped()
    {
        var book = JobBook.Empty.Apply(new JobSubmitted("old-1", 1, """{ "name": "old", "model": "retired-model", "dataset": { "name": "fashion-mnist" } }""", 1000));
        var job = book.Find("old-1")!;
        Assert.Equal(JobState.Failed, job.State);
        Assert.Contains("'model'", job.Error);
    }

    [Fact]
    public void Progress_for_a_job_that_is_not_running_is_ignored()
    {
        var book = JobBook.Empty.Apply(new JobSubmitted("fm-1", 1, Spec, 1000));
        Assert.Null(book.WithProgress("fm-1", new JobProgress(1, 1, 1, 1, 1, 1, [])).Find("fm-1")!.Progress);
        Assert.Same(book, book.WithProgress("nope", new JobProgress(1, 1, 1, 1, 1, 1, [])));
    }

    [Fact]
    public void A_snapshot_holds_the_whole_book_and_the_events_after_it_apply_as_before()
    {
        var book = JobBook.Empty
            .Apply(new JobSubmitted("fm-1", 1, Spec, 1000, "key-1"))
            .Apply(new JobSubmitted("fm-2", 2, Spec, 2000))
            .Apply(new JobSubmitted("fm-3", 3, Spec, 2500, "key-3"))
            .Apply(new JobStarted("fm-1", ["node-a", "node-b"], 3000))
            .Apply(new JobRecovering("fm-1", "node-b is unreachable", 3500))
            .Apply(new JobStarted("fm-1", ["node-a", "node-c"], 3600))
            .Apply(new JobCompleted("fm-1", double.NaN, 0.4, 100, 3, 1000, "/w.safetensors", 4000, new Dictionary<string, double> { ["perplexity"] = 3.5 }))
            .Apply(new JobStarted("fm-2", ["node-a"], 4100))
            .Apply(new JobFailed("fm-2", "ring failed", 4200));
        var restored = JobBook.FromSnapshot(book.ToSnapshot());
        Assert.Equal(Describe(book), Describe(restored));
        Assert.Equal(book.LastSequence, restored.LastSequence);
        Assert.Equal("fm-3", restored.FindSubmission("key-3")!.Id);
        Assert.Null(restored.FindSubmission("key-2"));

        // The next events apply to the restored book exactly as to the original.
        Orchestrator.Core.Protocol.IOrchestratorMessage[] next = [new JobSubmitted("fm-4", 4, Spec, 5000, "key-4"), new JobStarted("fm-3", ["node-c"], 5100), new JobCancelled("fm-4", 5200)];
        foreach (var e in next)
        {
            book = book.Apply(e);
            restored = restored.Apply(e);
        }
        Assert.Equal(Describe(book), Describe(restored));
        Assert.Equal(2, restored.Find("fm-3")!.NextGeneration);
    }

    /// <summary>Every field of every job (records compare their lists by reference, so the text of each is compared).</summary>
    private static string Describe(JobBook book) => string.Join("\n", book.Jobs.Select(j =>
        $"{j with { Nodes = null, Metrics = null, Progress = null }} nodes [{string.Join(",", j.AssignedNodes)}] " +
        $"metrics [{string.Join(",", (j.Metrics ?? new Dictionary<string, double>()).Select(kv => $"{kv.Key}={kv.Value}"))}]"));
}
