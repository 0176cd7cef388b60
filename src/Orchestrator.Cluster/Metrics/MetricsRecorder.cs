using System.Text.Json;
using Akka.Actor;
using Akka.Event;
using Orchestrator.Core.IO;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Metrics;

/// <summary>
/// Keeps every job's metrics history (a child of the job manager, so that file writes stay off its mailbox): rank 0's
/// reported steps with every worker's figures, and the held-out metrics of each evaluated checkpoint. On disk, two JSON
/// Lines files per job in <c>&lt;data-dir&gt;/metrics/</c> (<c>&lt;job-id&gt;.points.jsonl</c>,
/// <c>&lt;job-id&gt;.evaluations.jsonl</c>; docs/wire-formats.md): a point is appended, and the file is rewritten whole
/// (atomically) when <see cref="MetricsHistory"/> thins or rewinds it, so it survives a coordinator restart and stays
/// bounded. The histories of the most recently used jobs are kept in memory; others are read again when asked for.
/// </summary>
public sealed class MetricsRecorder : ReceiveActor
{
    /// <summary>Points kept per job before the older half is thinned.</summary>
    public const int PointLimit = 4000;
    /// <summary>Points per answer at most; fewer with many workers (<see cref="PageFor"/>).</summary>
    public const int Page = 200;

    /// <summary>
    /// Points per answer for points of <paramref name="workers"/> workers: about 120 KB of them (a point is under 100 bytes
    /// plus under 72 per worker), so that with the evaluations (at most <see cref="MetricsHistory.EvaluationLimit"/>) an answer
    /// stays under the cluster's 256,000-byte frame when the job API's node is not the job manager's.
    /// </summary>
    public static int PageFor(int workers) => Math.Clamp(120_000 / (100 + 72 * Math.Max(workers, 1)), 1, Page);
    private const int JobsInMemory = 32;

    public sealed record Record(string JobId, JobProtocol.MetricsPoint Point);
    public sealed record RecordEvaluations(string JobId, IReadOnlyList<JobProtocol.EvaluationPoint> Evaluations);

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private readonly string? _dir;
    private readonly string? _tensorBoardDir;
    private readonly Dictionary<string, (MetricsHistory History, long Used)> _jobs = [];
    private readonly Dictionary<string, TensorBoardRun> _tensorBoard = [];
    private readonly HashSet<string> _warned = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _clock;

    /// <param name="dir">Where the histories go; null keeps them in memory only (tests).</param>
    /// <param name="tensorBoardDir">Where each job's TensorBoard folder goes; null writes none.</param>
    public static Props Props(string? dir, string? tensorBoardDir = null) => Akka.Actor.Props.Create(() => new MetricsRecorder(dir, tensorBoardDir));

    /// <summary>A job's TensorBoard folder under <paramref name="tensorBoardDir"/>.</summary>
    public static string TensorBoardFolder(string tensorBoardDir, string jobId) => Path.Combine(tensorBoardDir, jobId);

    public MetricsRecorder(string? dir, string? tensorBoardDir)
    {
        _dir = dir;
        _tensorBoardDir = tensorBoardDir;
        Receive<Record>(m =>
        {
            var history = Get(m.JobId);
            if (history.Add(m.Point)) Rewrite(m.JobId, history);
            else Append(PointsFile(m.JobId), m.Point, m.JobId);
            Guarded(m.JobId, () => TensorBoard(m.JobId)?.Write(m.Point));
        });
        Receive<RecordEvaluations>(m =>
        {
            var history = Get(m.JobId);
            foreach (var evaluation in m.Evaluations)
                if (history.Add(evaluation))
                {
                    Append(EvaluationsFile(m.JobId), evaluation, m.JobId);
                    Guarded(m.JobId, () => TensorBoard(m.JobId)?.Write(evaluation, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
                }
        });
        Receive<JobProtocol.GetJobMetrics>(m =>
        {
            var history = Get(m.Id);
            var (points, more) = history.After(m.Since, PageFor(history.Points.Count == 0 ? 1 : history.Points[^1].Workers.Count));
            Sender.Tell(new JobProtocol.JobMetrics(m.Id, points, history.Evaluations.ToList(), more));
        });
    }

    private TensorBoardRun? TensorBoard(string jobId)
    {
        if (_tensorBoardDir is null) return null;
        if (_tensorBoard.TryGetValue(jobId, out var run)) return run;
        // As many writers as histories in memory: the least recently used job's goes (a later point opens a new file).
        if (_tensorBoard.Count >= JobsInMemory) _tensorBoard.Remove(_tensorBoard.Keys.MinBy(k => _jobs.TryGetValue(k, out var e) ? e.Used : 0)!);
        return _tensorBoard[jobId] = new TensorBoardRun(TensorBoardFolder(_tensorBoardDir, jobId));
    }

    private string? PointsFile(string jobId) => _dir is null ? null : Path.Combine(_dir, jobId + ".points.jsonl");
    private string? EvaluationsFile(string jobId) => _dir is null ? null : Path.Combine(_dir, jobId + ".evaluations.jsonl");

    private MetricsHistory Get(string jobId)
    {
        if (_jobs.TryGetValue(jobId, out var entry))
        {
            _jobs[jobId] = (entry.History, ++_clock);
            return entry.History;
        }
        if (_jobs.Count >= JobsInMemory) _jobs.Remove(_jobs.MinBy(j => j.Value.Used).Key);
        var history = new MetricsHistory(PointLimit);
        foreach (var point in Read<JobProtocol.MetricsPoint>(PointsFile(jobId))) history.Add(point);
        foreach (var evaluation in Read<JobProtocol.EvaluationPoint>(EvaluationsFile(jobId))) history.Add(evaluation);
        _jobs[jobId] = (history, ++_clock);
        return history;
    }

    /// <summary>Every line that parses (a line cut short by a crash is skipped).</summary>
    private IEnumerable<T> Read<T>(string? file)
    {
        if (file is null) return [];
        try { return JsonLinesFile.Read<T>(file, Json); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _log.Warning("metrics: could not read {0}: {1}", file, ex.Message);
            return [];
        }
    }

    private void Append<T>(string? file, T item, string jobId)
    {
        if (file is not null) Guarded(jobId, () => JsonLinesFile.Append(file, [item], Json));
    }

    private void Rewrite(string jobId, MetricsHistory history)
    {
        if (PointsFile(jobId) is { } file) Guarded(jobId, () => JsonLinesFile.Rewrite(file, history.Points, Json));
    }

    /// <summary>A full or read-only disk costs the history's files (and TensorBoard's), not the job: the history stays in memory, with one warning per job.</summary>
    private void Guarded(string jobId, Action write)
    {
        try { write(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (_warned.Add(jobId)) _log.Warning("metrics of job {0}: could not write to {1}: {2}; kept in memory only", jobId, _dir, ex.Message);
        }
    }
}
