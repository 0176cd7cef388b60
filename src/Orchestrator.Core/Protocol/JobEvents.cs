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
}
