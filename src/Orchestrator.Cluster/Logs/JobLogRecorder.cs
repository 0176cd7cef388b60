using Akka.Actor;
using Akka.Event;
using Orchestrator.Cluster.Metrics;
using Orchestrator.Core.IO;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Logs;

/// <summary>
/// Keeps every job's log (a child of the job manager, so that file writes stay off its mailbox): the lines its runners and
/// the job manager write about it, and the lines its workers send (relayed by the runner, which checks that they come from
/// the job's workers). On disk, one JSON Lines file per job, <c>&lt;data-dir&gt;/job-logs/&lt;job-id&gt;.jsonl</c>
/// (docs/wire-formats.md): lines are appended, and the file is rewritten whole (atomically) when <see cref="JobLog"/> lets the
/// oldest go, so a job's log outlives the job and a coordinator restart and stays bounded. The logs of the most recently
/// used jobs are kept in memory; others are read again when asked for.
/// </summary>
public sealed class JobLogRecorder : ReceiveActor
{
    /// <summary>Lines kept per job (and at most <see cref="JobLog.DefaultByteLimit"/> of text).</summary>
    public const int LineLimit = 20_000;
    private const int JobsInMemory = 8;

    /// <summary>
    /// A line about a job written on the coordinator (by its runner or the job manager): into the node's log, and into the
    /// job's log (sent to <paramref name="jobLogs"/>) as the runner's, rank -1.
    /// </summary>
    public static void Note(ActorSystem system, ILoggingAdapter log, IActorRef jobLogs, string jobId, LogLevel level, string text)
    {
        log.Job(level, jobId, text);
        jobLogs.Tell(new Append(jobId, [RunnerLine(system, level, text)]));
    }

    /// <summary>A line written on the coordinator about a job (by its runner or the job manager): rank -1, this node's address.</summary>
    private static JobProtocol.JobLogLine RunnerLine(ActorSystem system, LogLevel level, string text) =>
        new(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), ((ExtendedActorSystem)system).Provider.DefaultAddress.ToString(), -1,
            JobLogLevels.Name(level), text);

    /// <summary>Lines for a job's log, as they arrived (their sequence numbers are given here).</summary>
    public sealed record Append(string JobId, IReadOnlyList<JobProtocol.JobLogLine> Lines);

    private readonly string? _dir;
    private readonly Dictionary<string, (JobLog Log, long Used)> _jobs = [];
    private readonly HashSet<string> _warned = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _clock;

    /// <param name="dir">Where the logs go; null keeps them in memory only (tests).</param>
    public static Props Props(string? dir) => Akka.Actor.Props.Create(() => new JobLogRecorder(dir));

    public JobLogRecorder(string? dir)
    {
        _dir = dir;
        Receive<Append>(m =>
        {
            if (m.Lines.Count == 0) return;
            var log = Get(m.JobId);
            var (added, trimmed) = log.Append(m.Lines);
            if (trimmed) Rewrite(m.JobId, log);
            else AppendToFile(m.JobId, added);
        });
        Receive<JobProtocol.GetJobLogs>(m =>
        {
            var log = Get(m.Id);
            var (lines, more) = log.After(m.Since, JobProtocol.JobLogLine.BatchLimit, m.Rank);
            Sender.Tell(new JobProtocol.JobLogs(m.Id, lines, more, log.Dropped));
        });
    }

    private string? File(string jobId) => _dir is null ? null : Path.Combine(_dir, jobId + ".jsonl");

    private JobLog Get(string jobId)
    {
        if (_jobs.TryGetValue(jobId, out var entry))
        {
            _jobs[jobId] = (entry.Log, ++_clock);
            return entry.Log;
        }
        if (_jobs.Count >= JobsInMemory) _jobs.Remove(_jobs.MinBy(j => j.Value.Used).Key);
        var log = new JobLog(LineLimit);
        foreach (var line in Read(File(jobId))) log.Restore(line);
        _jobs[jobId] = (log, ++_clock);
        return log;
    }

    /// <summary>Every line that parses (a line cut short by a crash is skipped).</summary>
    private List<JobProtocol.JobLogLine> Read(string? file)
    {
        if (file is null) return [];
        try { return JsonLinesFile.Read<JobProtocol.JobLogLine>(file, MetricsRecorder.Json).Where(l => l is { Node: not null, Text: not null, Level: not null }).ToList(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _log.Warning("job logs: could not read {0}: {1}", file, ex.Message);
            return [];
        }
    }

    private void AppendToFile(string jobId, IReadOnlyList<JobProtocol.JobLogLine> lines)
    {
        if (File(jobId) is { } file) Guarded(jobId, () => JsonLinesFile.Append(file, lines, MetricsRecorder.Json));
    }

    private void Rewrite(string jobId, JobLog log)
    {
        if (File(jobId) is { } file) Guarded(jobId, () => JsonLinesFile.Rewrite(file, log.Lines, MetricsRecorder.Json));
    }

    /// <summary>A full or read-only disk costs the log's file, not the job: the log stays in memory, with one warning per job.</summary>
    private void Guarded(string jobId, Action write)
    {
        try { write(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (_warned.Add(jobId)) _log.Warning("log of job {0}: could not write to {1}: {2}; kept in memory only", jobId, _dir, ex.Message);
        }
    }
}
