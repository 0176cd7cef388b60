using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>
/// The job manager's journal. Events are facts in the past tense and are never changed once
/// released: the journal keeps them forever (add new events or new trailing keys instead).
/// Times are Unix milliseconds.
/// </summary>
public static class JobEvents
{
    /// <summary>A job was accepted. <paramref name="Sequence"/> numbers jobs in submit order; the id is derived from it.</summary>
    [MessagePackObject]
    public sealed record JobSubmitted([property: Key(0)] string Id, [property: Key(1)] long Sequence, [property: Key(2)] string SpecJson,
                                      [property: Key(3)] long AtMs, [property: Key(4)] string? SubmissionKey = null) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record JobStarted([property: Key(0)] string Id, [property: Key(1)] IReadOnlyList<string> Workers, [property: Key(2)] long AtMs) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record JobCompleted([property: Key(0)] string Id, [property: Key(1)] double Accuracy, [property: Key(2)] double Loss,
                                      [property: Key(3)] long Steps, [property: Key(4)] int Epochs, [property: Key(5)] double SamplesPerSecond,
                                      [property: Key(6)] string WeightsPath, [property: Key(7)] long AtMs,
                                      [property: Key(8)] IReadOnlyDictionary<string, double>? Metrics = null) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record JobFailed([property: Key(0)] string Id, [property: Key(1)] string Error, [property: Key(2)] long AtMs) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record JobCancelled([property: Key(0)] string Id, [property: Key(1)] long AtMs) : IOrchestratorMessage;

    /// <summary>A running job went back to the queue (its coordinator restarted); it starts again when devices are free.</summary>
    [MessagePackObject]
    public sealed record JobRequeued([property: Key(0)] string Id, [property: Key(1)] string Reason, [property: Key(2)] long AtMs) : IOrchestratorMessage;

    /// <summary>A running job lost a worker (or its ring failed): it goes on from its latest checkpoint once it has workers again.</summary>
    [MessagePackObject]
    public sealed record JobRecovering([property: Key(0)] string Id, [property: Key(1)] string Reason, [property: Key(2)] long AtMs) : IOrchestratorMessage;

    /// <summary>
    /// The job manager's whole state at a journal position: a snapshot (in the snapshot store, not the journal), so that a
    /// restart reads the newest one and replays only the events after it. Same rules as the events: released, never changed.
    /// </summary>
    [MessagePackObject]
    public sealed record JobBookSnapshot([property: Key(0)] long LastSequence, [property: Key(1)] IReadOnlyList<JobSnapshot> Jobs) : IOrchestratorMessage;

    /// <summary>One job in a <see cref="JobBookSnapshot"/>: everything its events made of it (times in Unix milliseconds).</summary>
    [MessagePackObject]
    public sealed record JobSnapshot(
        [property: Key(0)] string Id, [property: Key(1)] long Sequence, [property: Key(2)] string Name, [property: Key(3)] string SpecJson,
        [property: Key(4)] int Workers, [property: Key(5)] int DevicesPerWorker, [property: Key(6)] int Epochs, [property: Key(7)] string State,
        [property: Key(8)] long SubmittedAtMs, [property: Key(9)] long? StartedAtMs, [property: Key(10)] long? EndedAtMs,
        [property: Key(11)] IReadOnlyList<string> Nodes, [property: Key(12)] string? Error, [property: Key(13)] double? Accuracy,
        [property: Key(14)] double? FinalLoss, [property: Key(15)] long Steps, [property: Key(16)] string? Weights, [property: Key(17)] int Failures,
        [property: Key(18)] int MaxFailures, [property: Key(19)] int MinWorkers, [property: Key(20)] IReadOnlyDictionary<string, double>? Metrics,
        [property: Key(21)] string Model, [property: Key(22)] string? Package, [property: Key(23)] int Attempts, [property: Key(24)] string? Interruption,
        [property: Key(25)] string? SubmissionKey);
}
