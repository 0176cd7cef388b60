using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>
/// The job manager's requests and replies. The job API asks them through the singleton proxy, so
/// they may cross nodes. The reply records double as the job API's JSON bodies (camelCase), which
/// keeps the wire and the HTTP contract from drifting apart.
/// </summary>
public static class JobProtocol
{
    /// <summary>Submit a job file's text; answered with <see cref="JobAccepted"/> once its event is persisted, or <see cref="JobRejected"/>.</summary>
    [MessagePackObject]
    public sealed record SubmitJob([property: Key(0)] string SpecJson, [property: Key(1)] string? SubmissionKey = null) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record JobAccepted([property: Key(0)] string Id, [property: Key(1)] string Name, [property: Key(2)] string State) : IOrchestratorMessage;

    /// <summary>The job file is invalid: <paramref name="Field"/> (empty for the whole document) and what is wrong with it.</summary>
    [MessagePackObject]
    public sealed record JobRejected([property: Key(0)] string Field, [property: Key(1)] string Error) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record GetJob([property: Key(0)] string Id) : IOrchestratorMessage;

    /// <summary>Answer to a request that names a job id the manager has never accepted.</summary>
    [MessagePackObject]
    public sealed record JobNotFound([property: Key(0)] string Id) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record ListJobs : IOrchestratorMessage
    {
        public static readonly ListJobs Instance = new();
    }

    [MessagePackObject]
    public sealed record JobSummary([property: Key(0)] string Id, [property: Key(1)] string Name, [property: Key(2)] string State);

    [MessagePackObject]
    public sealed record JobList([property: Key(0)] IReadOnlyList<JobSummary> Jobs) : IOrchestratorMessage;

    /// <summary>
    /// Answer to any request while the job manager is down (its journal refused a write, for instance on a
    /// full disk) and waiting <paramref name="RetryInSeconds"/> to start again; nothing was recorded.
    /// </summary>
    [MessagePackObject]
    public sealed record JobManagerUnavailable([property: Key(0)] string Reason, [property: Key(1)] int RetryInSeconds) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="SubmitJob"/> when <paramref name="Limit"/> jobs already wait: nothing was recorded; try later.</summary>
    [MessagePackObject]
    public sealed record QueueFull([property: Key(0)] int Limit) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record CancelJob([property: Key(0)] string Id) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="CancelJob"/>: the job's state afterwards; <paramref name="Changed"/> is false when it had already ended.</summary>
    [MessagePackObject]
    public sealed record CancelResult([property: Key(0)] string Id, [property: Key(1)] string State, [property: Key(2)] bool Changed) : IOrchestratorMessage;

    /// <summary>
    /// A checkpoint and its held-out metrics once evaluated: every metric the workload names in
    /// <paramref name="Metrics"/> (<paramref name="Accuracy"/> and <paramref name="Loss"/> repeat two of
    /// them where it has them), and <paramref name="RankMetric"/>, the one that ranks checkpoints.
    /// </summary>
    [MessagePackObject]
    public sealed record CheckpointView(
        [property: Key(0)] long Step,
        [property: Key(1)] int Epoch,
        [property: Key(2)] string Path,
        [property: Key(3)] double? Accuracy,
        [property: Key(4)] double? Loss,
        [property: Key(5)] bool Verified,
        [property: Key(6)] IReadOnlyDictionary<string, double>? Metrics = null,
        [property: Key(7)] string? RankMetric = null,
        [property: Key(8)] bool HigherIsBetter = true);

    /// <summary>A job's status, the body of <c>GET /api/v1/jobs/{id}</c> (PRODUCT.md section 7, <c>status --json</c>).</summary>
    [MessagePackObject]
    public sealed record JobStatus(
        [property: Key(0)] string Id,
        [property: Key(1)] string Name,
        [property: Key(2)] string State,
        [property: Key(3)] int Epoch,
        [property: Key(4)] int Epochs,
        [property: Key(5)] long Step,
        [property: Key(6)] long? TotalSteps,
        [property: Key(7)] double? Loss,
        [property: Key(8)] double? SamplesPerSecond,
        [property: Key(9)] IReadOnlyList<string> Workers,
        [property: Key(10)] int Failures,
        [property: Key(11)] string? Error,
        [property: Key(12)] CheckpointView? LatestCheckpoint,
        [property: Key(13)] CheckpointView? BestCheckpoint,
        [property: Key(14)] string? Weights,
        [property: Key(15)] double? Accuracy,
        [property: Key(16)] string? Message,
        [property: Key(17)] int DevicesRequested,
        [property: Key(18)] string SubmittedAt,
        [property: Key(19)] string? StartedAt,
        [property: Key(20)] string? EndedAt,
        [property: Key(21)] IReadOnlyList<WorkerStat> WorkerStats,
        [property: Key(22)] IReadOnlyDictionary<string, double>? Metrics = null,
        [property: Key(23)] string? Workload = null,
        [property: Key(24)] string? TensorBoard = null) : IOrchestratorMessage;

    /// <summary>One worker of a running job: its rank, step, throughput and the share of step time spent communicating.</summary>
    [MessagePackObject]
    public sealed record WorkerStat(
        [property: Key(0)] string Node,
        [property: Key(1)] int Rank,
        [property: Key(2)] long Step,
        [property: Key(3)] double SamplesPerSecond,
        [property: Key(4)] double CommunicationShare);

    [MessagePackObject]
    public sealed record GetCheckpoints([property: Key(0)] string Id) : IOrchestratorMessage;

    /// <summary>A job's metrics history after step <paramref name="Since"/> (<c>GET /api/v1/jobs/{id}/metrics?since=</c>).</summary>
    [MessagePackObject]
    public sealed record GetJobMetrics([property: Key(0)] string Id, [property: Key(1)] long Since) : IOrchestratorMessage;

    /// <summary>
    /// One reported step of a job: rank 0's loss (the mean over its last report window), the learning rate, and
    /// every worker's throughput and communication share as each last reported them. Times are Unix milliseconds.
    /// </summary>
    [MessagePackObject]
    public sealed record MetricsPoint(
        [property: Key(0)] long Step,
        [property: Key(1)] int Epoch,
        [property: Key(2)] double Loss,
        [property: Key(3)] double LearningRate,
        [property: Key(4)] double SamplesPerSecond,
        [property: Key(5)] double CommunicationShare,
        [property: Key(6)] long AtMs,
        [property: Key(7)] IReadOnlyList<WorkerStat> Workers);

    /// <summary>The held-out metrics of the checkpoint at <paramref name="Step"/>, as the checkpoint actor evaluated them.</summary>
    [MessagePackObject]
    public sealed record EvaluationPoint([property: Key(0)] long Step, [property: Key(1)] IReadOnlyDictionary<string, double> Metrics);

    /// <summary>
    /// Answer to <see cref="GetJobMetrics"/>: points in step order (at most a page: <paramref name="More"/> says to ask
    /// again after the last step), and every evaluation.
    /// </summary>
    [MessagePackObject]
    public sealed record JobMetrics(
        [property: Key(0)] string Id,
        [property: Key(1)] IReadOnlyList<MetricsPoint> Points,
        [property: Key(2)] IReadOnlyList<EvaluationPoint> Evaluations,
        [property: Key(3)] bool More) : IOrchestratorMessage;

    /// <summary>
    /// A job's log lines after sequence number <paramref name="Since"/> (<c>GET /api/v1/jobs/{id}/logs?since=&amp;rank=</c>);
    /// <paramref name="Rank"/> keeps only one worker's lines (null: every worker's and the runner's).
    /// </summary>
    [MessagePackObject]
    public sealed record GetJobLogs([property: Key(0)] string Id, [property: Key(1)] long Since, [property: Key(2)] int? Rank = null) : IOrchestratorMessage;

    /// <summary>
    /// One line of a job's log. <paramref name="Seq"/> is its place in the job's log (given by the coordinator when the line
    /// arrives, 0 on its way there); <paramref name="AtMs"/> when its node wrote it (Unix milliseconds, that node's clock);
    /// <paramref name="Rank"/> the worker's rank in the generation that wrote it, -1 for the job's runner on the coordinator;
    /// <paramref name="Level"/> one of <c>info</c>, <c>warning</c>, <c>error</c>.
    /// </summary>
    [MessagePackObject]
    public sealed record JobLogLine(
        [property: Key(0)] long Seq,
        [property: Key(1)] long AtMs,
        [property: Key(2)] string Node,
        [property: Key(3)] int Rank,
        [property: Key(4)] string Level,
        [property: Key(5)] string Text)
    {
        /// <summary>A line's text is cut to this many characters (the rest is marked as cut)...</summary>
        public const int TextLimit = 1000;
        /// <summary>...and to this many UTF-8 bytes, so that a batch or a page of lines stays well within a 256,000-byte frame.</summary>
        public const int TextBytesLimit = 1500;
        /// <summary>Lines per <see cref="TrainingProtocol.JobLogBatch"/> and per <see cref="JobLogs"/> page at most.</summary>
        public const int BatchLimit = 100;
        public static readonly IReadOnlySet<string> Levels = new HashSet<string> { "info", "warning", "error" };

        /// <summary>
        /// <paramref name="text"/> within <see cref="TextLimit"/> characters, on one line, without control characters (a line
        /// ends up on someone's terminal: no escape sequences).
        /// </summary>
        public static string Bounded(string text)
        {
            text = text.ReplaceLineEndings(" \u21b5 ");
            if (text.Length > TextLimit) text = text[..(TextLimit - 3)] + "...";
            if (System.Text.Encoding.UTF8.GetByteCount(text) > TextBytesLimit)
            {
                var bytes = System.Text.Encoding.UTF8.GetBytes(text);
                int end = TextBytesLimit - 3;
                while (end > 0 && (bytes[end] & 0xC0) == 0x80) end--;   // not inside a character
                text = System.Text.Encoding.UTF8.GetString(bytes, 0, end) + "...";
            }
            return text.Any(char.IsControl) ? string.Concat(text.Select(c => char.IsControl(c) ? '\uFFFD' : c)) : text;
        }
    }

    /// <summary>
    /// Answer to <see cref="GetJobLogs"/>: lines in the order they arrived (at most a page: <paramref name="More"/> says to ask
    /// again after the last); <paramref name="Dropped"/> how many of the job's lines are no longer kept (the oldest go first
    /// past the job's limit) or were dropped by a worker that wrote faster than it could send.
    /// </summary>
    [MessagePackObject]
    public sealed record JobLogs(
        [property: Key(0)] string Id,
        [property: Key(1)] IReadOnlyList<JobLogLine> Lines,
        [property: Key(2)] bool More,
        [property: Key(3)] long Dropped) : IOrchestratorMessage;

    /// <summary>Ask for a step timeline of steps <paramref name="From"/> to <paramref name="To"/> of a running job (<c>POST /api/v1/jobs/{id}/trace</c>).</summary>
    [MessagePackObject]
    public sealed record RequestTrace([property: Key(0)] string Id, [property: Key(1)] long From, [property: Key(2)] long To) : IOrchestratorMessage;

    /// <summary>
    /// A trace request the job cannot serve: <paramref name="Field"/> (<c>from</c>, <c>to</c>, or empty) and why.
    /// <paramref name="Kind"/>: <c>invalid</c> (the window is wrong: 400), <c>conflict</c> (the job is not running: 409),
    /// <c>later</c> (not yet possible, ask again in a few seconds: 503).
    /// </summary>
    [MessagePackObject]
    public sealed record TraceRefused([property: Key(0)] string Id, [property: Key(1)] string Field, [property: Key(2)] string Reason,
                                      [property: Key(3)] string Kind = "invalid") : IOrchestratorMessage;

    /// <summary>The trace of a job (<c>GET /api/v1/jobs/{id}/trace</c>): the last one asked for, as far as its workers have sent it.</summary>
    [MessagePackObject]
    public sealed record GetTrace([property: Key(0)] string Id) : IOrchestratorMessage;

    /// <summary>One worker of a trace: its rank, node, and whether all of its spans arrived.</summary>
    [MessagePackObject]
    public sealed record TraceRank([property: Key(0)] int Rank, [property: Key(1)] string Node, [property: Key(2)] bool Complete);

    /// <summary>
    /// One timed phase of a traced step on a worker (<c>step</c>, <c>forward</c>, <c>backward</c>, <c>gather</c>,
    /// <c>all-reduce</c>, <c>all-reduce bucket N</c>, <c>scatter</c>, <c>optimizer</c>, <c>checkpoint capture</c>): Unix
    /// microseconds on that worker's clock; <paramref name="Bytes"/> what a bucket sent (-1 for other phases).
    /// </summary>
    [MessagePackObject]
    public sealed record TraceSpanView([property: Key(0)] int Rank, [property: Key(1)] string Name, [property: Key(2)] long Step,
                                       [property: Key(3)] long StartUs, [property: Key(4)] long DurationUs, [property: Key(5)] long Bytes)
    {
        /// <summary>Spans per <see cref="TrainingProtocol.TraceSpans"/> message.</summary>
        public const int PartLimit = 500;
    }

    /// <summary>
    /// A trace as far as it arrived (also the answer to <see cref="RequestTrace"/>, with no spans yet). At most 2,000 spans in
    /// all, so that it fits a frame.
    /// </summary>
    [MessagePackObject]
    public sealed record TraceResult(
        [property: Key(0)] string Id,
        [property: Key(1)] string TraceId,
        [property: Key(2)] long From,
        [property: Key(3)] long To,
        [property: Key(4)] IReadOnlyList<TraceRank> Ranks,
        [property: Key(5)] IReadOnlyList<TraceSpanView> Spans) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record CheckpointList([property: Key(0)] string Id, [property: Key(1)] IReadOnlyList<CheckpointView> Checkpoints) : IOrchestratorMessage;

    /// <summary>Ask for the registered workers and their devices (the body of <c>GET /api/v1/workers</c>).</summary>
    [MessagePackObject]
    public sealed record GetWorkers : IOrchestratorMessage
    {
        public static readonly GetWorkers Instance = new();
    }

    [MessagePackObject]
    public sealed record WorkerView(
        [property: Key(0)] string Node,
        [property: Key(1)] string Status,
        [property: Key(2)] IReadOnlyList<ClusterProtocol.DeviceInfo> Devices,
        [property: Key(3)] string? RunningJob);

    [MessagePackObject]
    public sealed record WorkerList([property: Key(0)] IReadOnlyList<WorkerView> Workers) : IOrchestratorMessage;
}
