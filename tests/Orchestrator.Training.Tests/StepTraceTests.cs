using System.Diagnostics;
using Orchestrator.Training.Engine;

namespace Orchestrator.Training.Tests;

/// <summary>The step trace: nothing outside a window, every phase of the steps in it, the window's spans out once at its end.</summary>
public sealed class StepTraceTests
{
    private static (StepTrace Trace, List<(string Id, IReadOnlyList<TraceSpan> Spans)> Done) Traced()
    {
        var done = new List<(string, IReadOnlyList<TraceSpan>)>();
        var trace = new StepTrace();
        trace.Completed = (id, spans) => done.Add((id, spans));
        return (trace, done);
    }

    private static void Step(StepTrace trace, long step, bool last = false)
    {
        if (!trace.BeginStep(step)) return;
        var t = Stopwatch.GetTimestamp();
        trace.Span("forward", t);
        trace.Span("all-reduce bucket 0", t, Stopwatch.GetTimestamp(), 1024);
        trace.EndStep(last);
    }

    [Fact]
    public void Without_a_request_no_step_is_recorded_and_nothing_is_sent()
    {
        var (trace, done) = Traced();
        for (long s = 1; s <= 100; s++) Step(trace, s);
        trace.EndRun();
        Assert.Empty(done);
        Assert.False(trace.Recording);
    }

    [Fact]
    public void The_steps_of_a_window_are_recorded_and_sent_once_after_its_last_step()
    {
        var (trace, done) = Traced();
        trace.Request(5, 7, "t1");
        for (long s = 1; s <= 10; s++) Step(trace, s);
        var (id, spans) = Assert.Single(done);
        Assert.Equal("t1", id);
        Assert.Equal([5L, 6, 7], spans.Where(s => s.Name == "step").Select(s => s.Step));
        Assert.Equal(9, spans.Count);   // forward, a bucket and the step, for each of three steps
        Assert.All(spans, s => Assert.True(s.DurationUs >= 0));
        Assert.Equal(1024, spans.Single(s => s.Step == 6 && s.Name.StartsWith("all-reduce")).Bytes);
        // Unix microseconds on this clock: within a minute of now.
        Assert.InRange(spans[0].StartUs, (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000) * 1000, (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 1000) * 1000);
    }

    [Fact]
    public void A_window_that_began_while_the_request_travelled_is_recorded_from_the_current_step_and_one_that_passed_ends_empty()
    {
        var (trace, done) = Traced();
        for (long s = 1; s <= 6; s++) Step(trace, s);
        trace.Request(5, 8, "late");
        for (long s = 7; s <= 9; s++) Step(trace, s);
        Assert.Equal([7L, 8], Assert.Single(done).Spans.Where(s => s.Name == "step").Select(s => s.Step));

        trace.Request(2, 3, "passed");
        Step(trace, 10);
        Assert.Equal("passed", done[1].Id);
        Assert.Empty(done[1].Spans);
    }

    [Fact]
    public void A_run_that_ends_inside_a_window_sends_what_it_has_and_the_spans_are_bounded()
    {
        var (trace, done) = Traced();
        trace.Request(1, 20, "short");
        for (long s = 1; s <= 3; s++) Step(trace, s, last: s == 3);
        Assert.Equal(3, Assert.Single(done).Spans.Count(s => s.Name == "step"));

        trace.Request(4, 4, "many");
        Assert.True(trace.BeginStep(4));
        for (int i = 0; i < StepTrace.MaxSpans + 50; i++) trace.Span($"all-reduce bucket {i}", Stopwatch.GetTimestamp(), 4);
        trace.EndStep();
        Assert.Equal(StepTrace.MaxSpans, done[1].Spans.Count);
    }
}
