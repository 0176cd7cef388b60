using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Logs;
using Orchestrator.Cluster.Worker;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>A job's log: numbered as lines arrive, bounded by letting the oldest go, paged, filtered by rank; a worker's buffer bounded.</summary>
public sealed class JobLogTests
{
    private static JobLogLine Line(string text, int rank = 0, string level = "info") => new(0, 1_700_000_000_000, "node-a", rank, level, text);

    [Fact]
    public void Lines_are_numbered_as_they_arrive_and_past_the_limit_the_oldest_go_and_are_counted()
    {
        var log = new JobLog(8);
        log.Append(Enumerable.Range(1, 8).Select(i => Line($"line {i}")));
        Assert.Equal(Enumerable.Range(1, 8).Select(i => (long)i), log.Lines.Select(l => l.Seq));
        Assert.Equal(0, log.Dropped);
        var (added, trimmed) = log.Append([Line("line 9")]);
        Assert.True(trimmed);
        Assert.Equal(9, Assert.Single(added).Seq);
        Assert.Equal(6, log.Lines.Count);   // three quarters of the limit stay
        Assert.Equal(["line 4", "line 5", "line 6", "line 7", "line 8", "line 9"], log.Lines.Select(l => l.Text));
        Assert.Equal(3, log.Dropped);
        Assert.Equal(10, log.Append([Line("line 10")]).Added[0].Seq);   // numbers go on where they were
    }

    [Fact]
    public void Past_the_byte_limit_the_oldest_lines_go_until_a_quarter_is_free()
    {
        var log = new JobLog(1000, byteLimit: 64 * 1024);
        var (_, trimmed) = log.Append(Enumerable.Range(1, 100).Select(i => Line(new string('x', 900))));
        Assert.True(trimmed);
        Assert.InRange(log.Lines.Count, 20, 30);   // about 1.9 KB a line here: three quarters of 64 KiB
        Assert.Equal(100, log.LastSeq);
        Assert.Equal(100 - log.Lines.Count, log.Dropped);
    }

    [Fact]
    public void A_line_of_many_byte_characters_is_cut_within_the_byte_limit_on_a_character_boundary()
    {
        var text = JobLogLine.Bounded(new string('\u6f22', 900));   // three UTF-8 bytes each
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(text) <= JobLogLine.TextBytesLimit);
        Assert.EndsWith("...", text);
        Assert.DoesNotContain('\uFFFD', text);
        Assert.Equal(text, System.Text.Encoding.UTF8.GetString(System.Text.Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void A_reader_pages_after_the_last_line_it_saw_and_may_keep_one_rank()
    {
        var log = new JobLog(100);
        log.Append(Enumerable.Range(1, 10).Select(i => Line($"line {i}", rank: i % 2 == 0 ? 1 : -1)));
        var (first, more) = log.After(0, 4);
        Assert.Equal([1L, 2, 3, 4], first.Select(l => l.Seq));
        Assert.True(more);
        var (rest, none) = log.After(4, 100);
        Assert.Equal(6, rest.Count);
        Assert.False(none);
        Assert.Equal([2L, 4, 6, 8, 10], log.After(0, 100, rank: 1).Lines.Select(l => l.Seq));
        Assert.Empty(log.After(10, 100).Lines);
    }

    [Fact]
    public void Text_from_a_worker_is_cut_to_one_line_without_control_characters_and_an_unknown_level_is_info()
    {
        var log = new JobLog(100);
        var (added, _) = log.Append([Line("first\nsecond \u001b[31mred\u001b[0m", level: "critical"), Line(new string('x', 5000))]);
        Assert.Equal("first \u21b5 second \uFFFD[31mred\uFFFD[0m", added[0].Text);
        Assert.Equal("info", added[0].Level);
        Assert.Equal(JobLogLine.TextLimit, added[1].Text.Length);
        Assert.EndsWith("...", added[1].Text);
    }

    [Fact]
    public void A_log_read_back_from_its_file_keeps_its_numbers_and_skips_lines_out_of_order()
    {
        var log = new JobLog(4);
        foreach (var seq in new long[] { 4, 5, 6, 6, 3, 7, 8 }) log.Restore(Line($"line {seq}") with { Seq = seq });
        Assert.Equal([5L, 6, 7, 8], log.Lines.Select(l => l.Seq));
        Assert.Equal(4, log.Dropped);
        Assert.Equal(9, log.Append([Line("next")]).Added[0].Seq);
    }

    [Fact]
    public void A_worker_buffer_keeps_at_most_its_limit_sends_batches_of_at_most_the_batch_limit_and_counts_what_it_dropped()
    {
        var buffer = new JobLogBuffer("node-a", rank: 1, limit: 150);
        Assert.Null(buffer.Take("job-1"));
        for (int i = 0; i < 160; i++) buffer.Info($"line {i}");
        var batches = buffer.TakeAll("job-1").ToList();
        Assert.Equal([JobLogLine.BatchLimit, 50], batches.Select(b => b.Lines.Count));
        Assert.Equal(10, batches[0].Dropped);
        Assert.Equal(0, batches[1].Dropped);
        Assert.All(batches.SelectMany(b => b.Lines), l => Assert.Equal(1, l.Rank));
        Assert.Equal("line 149", batches[1].Lines[^1].Text);
        Assert.Null(buffer.Take("job-1"));
    }
}

/// <summary>The recorder's file: what one recorder wrote, the next (a restarted coordinator's) reads, numbers and all.</summary>
public sealed class JobLogRecorderSpec() : TestKit(MetricsRecorderSpec.SystemConfig), IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orch-joblog-spec-").FullName;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_log_written_by_one_recorder_is_read_by_the_next_and_a_torn_last_line_is_skipped()
    {
        var first = Sys.ActorOf(JobLogRecorder.Props(_dir), "first");
        first.Tell(new JobLogRecorder.Append("job-1", [new JobLogLine(0, 1_700_000_000_000, "node-a", 0, "info", "rank 0 of 2"),
            new JobLogLine(0, 1_700_000_000_500, "node-b", 1, "warning", "rank 1 {0} braces")]));
        first.Tell(new GetJobLogs("job-1", 0));
        Assert.Equal(2, (await ExpectMsgAsync<JobLogs>(Wait)).Lines.Count);
        Watch(first);
        Sys.Stop(first);
        await ExpectTerminatedAsync(first, Wait);
        File.AppendAllText(Path.Combine(_dir, "job-1.jsonl"), "{\"seq\":3,\"atMs\":17");   // a crash in the middle of an append

        var next = Sys.ActorOf(JobLogRecorder.Props(_dir), "next");
        next.Tell(new JobLogRecorder.Append("job-1", [new JobLogLine(0, 1_700_000_001_000, "node-a", 0, "info", "after the restart")]));
        next.Tell(new GetJobLogs("job-1", 0));
        var logs = await ExpectMsgAsync<JobLogs>(Wait);
        Assert.Equal([1L, 2, 3], logs.Lines.Select(l => l.Seq));
        Assert.Equal(["rank 0 of 2", "rank 1 {0} braces", "after the restart"], logs.Lines.Select(l => l.Text));
        Assert.Equal("warning", logs.Lines[1].Level);
        next.Tell(new GetJobLogs("job-1", 0, Rank: 1));
        Assert.Equal("node-b", Assert.Single((await ExpectMsgAsync<JobLogs>(Wait)).Lines).Node);

        // The line appended after the torn one is whole on disk: a third recorder reads all three.
        Watch(next);
        Sys.Stop(next);
        await ExpectTerminatedAsync(next, Wait);
        var third = Sys.ActorOf(JobLogRecorder.Props(_dir), "third");
        third.Tell(new GetJobLogs("job-1", 0));
        Assert.Equal(["rank 0 of 2", "rank 1 {0} braces", "after the restart"], (await ExpectMsgAsync<JobLogs>(Wait)).Lines.Select(l => l.Text));
    }

    void IDisposable.Dispose()
    {
        Shutdown();
        Directory.Delete(_dir, recursive: true);
    }
}
