using System.Collections.Immutable;
using Orchestrator.Cluster.Coordinator;
using Orchestrator.Cluster.Tracing;
using Orchestrator.Core.Jobs;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>A trace request's checks, and a trace's parts as its workers send them.</summary>
public sealed class JobTraceTests
{
    private static JobRecord Job(JobState state, long step = 100, long total = 900) =>
        new("job-1", 1, "job", "{}", 2, 1, 1, state, DateTimeOffset.UnixEpoch,
            Progress: step < 0 ? null : new JobProgress(1, 1, step, total, 0.5, 1000, ImmutableList<WorkerStat>.Empty));

    [Theory]
    [InlineData(JobState.Queued, 200, 205, "", "only a running job can be traced", "conflict")]
    [InlineData(JobState.Running, 0, 5, "from", "must be a step number", "invalid")]
    [InlineData(JobState.Running, 300, 299, "to", "must be at least from (300)", "invalid")]
    [InlineData(JobState.Running, 300, 320, "to", "a trace covers at most 20 steps", "invalid")]
    [InlineData(JobState.Running, 895, 905, "to", "the job has 900 steps, so step 905 is outside it", "invalid")]
    [InlineData(JobState.Running, 50, 60, "from", "step 50 has run already (the job is at step 100)", "invalid")]
    public void A_request_outside_what_the_job_can_give_is_refused_naming_the_field(JobState state, long from, long to, string field, string reason, string kind)
    {
        var refused = TraceWindow.Check(Job(state), from, to);
        Assert.NotNull(refused);
        Assert.Equal(field, refused.Value.Field);
        Assert.Contains(reason, refused.Value.Reason);
        Assert.Equal(kind, refused.Value.Kind);
    }

    [Fact]
    public void A_window_ahead_of_a_running_job_is_accepted_and_one_before_its_first_report_waits()
    {
        Assert.Null(TraceWindow.Check(Job(JobState.Running), 200, 219));
        var early = TraceWindow.Check(Job(JobState.Running, step: -1), 200, 205)!.Value;
        Assert.Contains("has not reported a step yet", early.Reason);
        Assert.Equal("later", early.Kind);
    }

    [Fact]
    public void Parts_count_only_for_this_trace_and_its_ranks_take_the_rank_of_their_sender_and_stay_within_the_limit()
    {
        var trace = new JobTrace("job-1", "t1", 10, 12, ["node-a", "node-b"]);
        TraceSpanView Span(int rank, long step, string name = "step") => new(rank, name, step, 1_000_000, 50, -1);
        Assert.False(trace.Add(0, "old", [Span(0, 10)], last: true));
        Assert.False(trace.Add(2, "t1", [Span(2, 10)], last: true));
        Assert.True(trace.Add(0, "t1", [Span(5, 10), Span(0, 99)], last: false));   // a claimed rank 5 is rank 0; step 99 is not asked for
        Assert.False(trace.IsComplete);
        Assert.True(trace.Add(0, "t1", [], last: true));
        Assert.True(trace.Add(1, "t1", Enumerable.Range(0, JobTrace.SpanLimit + 10).Select(i => Span(1, 11, $"bucket {i}")).ToList(), last: true));
        Assert.True(trace.IsComplete);
        var view = trace.View();
        Assert.Equal(1 + JobTrace.SpanLimit / 2, view.Spans.Count);   // rank 1 kept its share, no more
        Assert.Equal(0, view.Spans[0].Rank);
        Assert.Equal(10, view.Spans[0].Step);
        Assert.All(view.Ranks, r => Assert.True(r.Complete));
        Assert.Equal(["node-a", "node-b"], view.Ranks.Select(r => r.Node));
    }
}
