using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>Between a job runner (coordinator) and the worker agents that train its replicas.</summary>
public static class TrainingProtocol
{
    /// <summary>
    /// Runner → agent: train this job as worker <paramref name="Rank"/> of <paramref name="WorldSize"/>.
    /// <paramref name="Peers"/> are every worker's node address by rank; the ring is formed in that order.
    /// <paramref name="WorldSize"/> is the number of workers (fewer than the job asks for after a recovery
    /// down to minWorkers). <paramref name="CheckpointStore"/> is the checkpoint actor's path (empty: none);
    /// <paramref name="ResumeStep"/> the checkpoint to continue from (-1: from the start). <paramref name="RingKey"/> is this
    /// generation's secret for the TCP ring handshake (32 random bytes, the same for every rank, new for every generation).
    /// </summary>
    [MessagePackObject]
    public sealed record StartTraining(
        [property: Key(0)] string JobId,
        [property: Key(1)] string SpecJson,
        [property: Key(2)] int Generation,
        [property: Key(3)] int Rank,
        [property: Key(4)] int WorldSize,
        [property: Key(5)] IReadOnlyList<string> Peers,
        [property: Key(6)] string CheckpointStore = "",
        [property: Key(7)] long ResumeStep = -1,
        [property: Key(8)] byte[]? RingKey = null) : IOrchestratorMessage;

    /// <summary>
    /// Agent → runner: the job's data is loaded and this worker is ready to join the ring.
    /// <paramref name="Endpoint"/> is where its TCP link listens (host:port), empty for the Akka link.
    /// </summary>
    [MessagePackObject]
    public sealed record TrainingStarted([property: Key(0)] string JobId, [property: Key(1)] string Node, [property: Key(2)] string Endpoint) : IOrchestratorMessage;

    /// <summary>Runner → agents, once every worker is ready: start stepping. <paramref name="Endpoints"/> by rank (TCP link).</summary>
    [MessagePackObject]
    public sealed record BeginTraining([property: Key(0)] string JobId, [property: Key(1)] int Generation,
                                       [property: Key(2)] IReadOnlyList<string> Endpoints) : IOrchestratorMessage;

    /// <summary>
    /// Agent → runner, about once a second: where this worker is. Loss is its mean since the last report;
    /// <paramref name="CommunicationShare"/> is the share of its step time spent in the all-reduce.
    /// </summary>
    [MessagePackObject]
    public sealed record TrainingProgress(
        [property: Key(0)] string JobId,
        [property: Key(1)] string Node,
        [property: Key(2)] int Epoch,
        [property: Key(3)] int Epochs,
        [property: Key(4)] long Step,
        [property: Key(5)] long TotalSteps,
        [property: Key(6)] double Loss,
        [property: Key(7)] double SamplesPerSecond,
        [property: Key(8)] double CommunicationShare,
        [property: Key(9)] double LearningRate = double.NaN) : IOrchestratorMessage;

    /// <summary>
    /// Agent → runner: this worker took the last step. <paramref name="Digest"/> is the SHA-256 of its
    /// parameters (the runner compares every worker's); held-out metrics and the weights' path come
    /// from rank 0 only (null elsewhere). <paramref name="Metrics"/> are the workload's held-out metrics by
    /// name (<paramref name="Accuracy"/> and <paramref name="Loss"/> repeat two of them where the workload has them).
    /// </summary>
    [MessagePackObject]
    public sealed record TrainingCompleted(
        [property: Key(0)] string JobId,
        [property: Key(1)] string Node,
        [property: Key(2)] double? Accuracy,
        [property: Key(3)] double? Loss,
        [property: Key(4)] long Steps,
        [property: Key(5)] int Epochs,
        [property: Key(6)] double SamplesPerSecond,
        [property: Key(7)] string? WeightsPath,
        [property: Key(8)] string Digest,
        [property: Key(9)] double CommunicationShare,
        [property: Key(10)] IReadOnlyDictionary<string, double>? Metrics = null) : IOrchestratorMessage;

    /// <summary>Agent → runner: training could not go on; <paramref name="Error"/> says why, for the job's status.</summary>
    [MessagePackObject]
    /// <remarks><paramref name="Recoverable"/>: the job may go on from its latest checkpoint with a new ring (a peer was lost), rather than fail.</remarks>
    public sealed record TrainingFailed([property: Key(0)] string JobId, [property: Key(1)] string Node, [property: Key(2)] string Error,
                                        [property: Key(3)] bool Recoverable = false) : IOrchestratorMessage;

    /// <summary>Agent → runner: this worker's parameter digest after step <paramref name="Step"/>, a checkpoint step; all must agree.</summary>
    [MessagePackObject]
    public sealed record CheckpointDigest([property: Key(0)] string JobId, [property: Key(1)] string Node, [property: Key(2)] long Step,
                                          [property: Key(3)] string Digest) : IOrchestratorMessage;

    /// <summary>
    /// Agent → runner, about once a second while a job trains: the job's log lines written on this worker since the last
    /// batch (the trainer's own and the workload's), at most <see cref="JobLogLine.BatchLimit"/> of them;
    /// <paramref name="Dropped"/> counts the lines this worker had to drop since the last batch because more came than fit.
    /// </summary>
    [MessagePackObject]
    public sealed record JobLogBatch([property: Key(0)] string JobId, [property: Key(1)] string Node,
                                     [property: Key(2)] IReadOnlyList<JobProtocol.JobLogLine> Lines, [property: Key(3)] long Dropped) : IOrchestratorMessage;

    /// <summary>
    /// Runner → agent → trainer: record the phases of steps <paramref name="From"/> to <paramref name="To"/> (counted from 1)
    /// of this generation, and send them as <see cref="TraceSpans"/> under <paramref name="TraceId"/> once the last has run.
    /// </summary>
    [MessagePackObject]
    public sealed record TraceSteps([property: Key(0)] string JobId, [property: Key(1)] int Generation, [property: Key(2)] string TraceId,
                                    [property: Key(3)] long From, [property: Key(4)] long To) : IOrchestratorMessage;

    /// <summary>
    /// Trainer → agent → runner: a part of this worker's recorded spans (at most <see cref="JobProtocol.TraceSpanView.PartLimit"/>);
    /// <paramref name="Last"/> on the final part. The runner sets each span's rank from the sender, whatever the part says.
    /// </summary>
    [MessagePackObject]
    public sealed record TraceSpans([property: Key(0)] string JobId, [property: Key(1)] string Node, [property: Key(2)] string TraceId,
                                    [property: Key(3)] IReadOnlyList<JobProtocol.TraceSpanView> Spans, [property: Key(4)] bool Last) : IOrchestratorMessage;

    /// <summary>Runner → agent: stop this job (cancelled, or the job failed elsewhere).</summary>
    [MessagePackObject]
    public sealed record StopTraining([property: Key(0)] string JobId) : IOrchestratorMessage;

    /// <summary>Agent → runner and registry: the job's compute has ended on this node; its devices are free.</summary>
    [MessagePackObject]
    public sealed record TrainingStopped([property: Key(0)] string JobId, [property: Key(1)] string Node) : IOrchestratorMessage;
}
