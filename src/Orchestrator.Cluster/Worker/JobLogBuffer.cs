using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Worker;

/// <summary>
/// A job's log lines written on this worker (by the trainer's actor, its compute thread, and the workload through
/// <c>WorkloadContext.Log</c>) until the trainer sends them to the job's runner, about once a second. Bounded: past
/// <see cref="Limit"/> waiting lines, further ones are counted instead of kept, and the next batch says how many.
/// </summary>
public sealed class JobLogBuffer(string node, int rank, int limit = JobLogBuffer.DefaultLimit)
{
    public const int DefaultLimit = 1000;
    private readonly object _gate = new();
    private readonly Queue<JobProtocol.JobLogLine> _waiting = new();
    private long _dropped;

    public int Limit { get; } = limit;

    public void Info(string text) => Write("info", text);
    public void Warning(string text) => Write("warning", text);
    public void Error(string text) => Write("error", text);

    public void Write(string level, string text)
    {
        var line = new JobProtocol.JobLogLine(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), node, rank, level, JobProtocol.JobLogLine.Bounded(text));
        lock (_gate)
        {
            if (_waiting.Count >= Limit) _dropped++;
            else _waiting.Enqueue(line);
        }
    }

    /// <summary>The next batch to send (at most a batch's worth of lines) and the lines dropped since the last; null when nothing waits.</summary>
    public TrainingProtocol.JobLogBatch? Take(string jobId)
    {
        lock (_gate)
        {
            if (_waiting.Count == 0 && _dropped == 0) return null;
            var lines = new List<JobProtocol.JobLogLine>(Math.Min(_waiting.Count, JobProtocol.JobLogLine.BatchLimit));
            while (lines.Count < JobProtocol.JobLogLine.BatchLimit && _waiting.TryDequeue(out var line)) lines.Add(line);
            var batch = new TrainingProtocol.JobLogBatch(jobId, node, lines, _dropped);
            _dropped = 0;
            return batch;
        }
    }

    /// <summary>Every batch that waits, for the last send before the trainer stops.</summary>
    public IEnumerable<TrainingProtocol.JobLogBatch> TakeAll(string jobId)
    {
        while (Take(jobId) is { } batch) yield return batch;
    }
}
