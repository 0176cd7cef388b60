using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>
/// Between trainers, job runners, the job manager and the checkpoint actor (role <c>checkpoint</c>,
/// at <c>/user/checkpoint-store</c>). Snapshots travel in both directions (rank 0 uploads, every
/// trainer of a resumed job downloads) as a <see cref="SnapshotOffer"/> followed by
/// <see cref="SnapshotChunk"/>s of about 64 KiB, each acknowledged, with a bounded number in flight:
/// never one oversized remote message.
/// </summary>
public static class CheckpointProtocol
{
    /// <summary>
    /// Opens a transfer: what the snapshot is, and the length and SHA-256 of the bytes that follow
    /// (the model file, then the optimizer file). <paramref name="SpecJson"/> lets the store evaluate it.
    /// </summary>
    [MessagePackObject]
    public sealed record SnapshotOffer(
        [property: Key(0)] string TransferId,
        [property: Key(1)] string JobId,
        [property: Key(2)] string SpecJson,
        [property: Key(3)] int Generation,
        [property: Key(4)] long Step,
        [property: Key(5)] int Epoch,
        [property: Key(6)] int EpochStep,
        [property: Key(7)] int GlobalBatch,
        [property: Key(8)] string Digest,
        [property: Key(9)] long ModelLength,
        [property: Key(10)] long OptimizerLength,
        [property: Key(11)] string Sha256) : IOrchestratorMessage;

    /// <summary>
    /// Runner → store, when a ring generation begins: snapshots of this job are accepted only from
    /// <paramref name="Node"/> (its rank 0) with this <paramref name="Generation"/>.
    /// </summary>
    [MessagePackObject]
    public sealed record UploaderFor([property: Key(0)] string JobId, [property: Key(1)] int Generation, [property: Key(2)] string Node) : IOrchestratorMessage;

    [MessagePackObject]
    public sealed record SnapshotChunk([property: Key(0)] string TransferId, [property: Key(1)] long Offset, [property: Key(2)] byte[] Data) : IOrchestratorMessage;

    /// <summary>Receiver → sender: the chunk at <paramref name="Offset"/> arrived (a credit for the next one).</summary>
    [MessagePackObject]
    public sealed record SnapshotChunkAck([property: Key(0)] string TransferId, [property: Key(1)] long Offset) : IOrchestratorMessage;

    /// <summary>Receiver → sender, last: the transfer succeeded (for an upload: the checkpoint is committed at <paramref name="Detail"/>) or why not.</summary>
    [MessagePackObject]
    public sealed record TransferDone([property: Key(0)] string TransferId, [property: Key(1)] bool Ok, [property: Key(2)] string Detail) : IOrchestratorMessage;

    /// <summary>Trainer → store: send me the checkpoint of this job at this step (it answers with an offer and chunks, or a failed <see cref="TransferDone"/>).</summary>
    [MessagePackObject]
    public sealed record FetchCheckpoint([property: Key(0)] string TransferId, [property: Key(1)] string JobId, [property: Key(2)] long Step) : IOrchestratorMessage;

    /// <summary>Runner → store: which checkpoint would this job resume from?</summary>
    [MessagePackObject]
    public sealed record GetLatestCheckpoint([property: Key(0)] string JobId) : IOrchestratorMessage;

    /// <summary>The newest verified checkpoint (<paramref name="Step"/> -1: none); <paramref name="Skipped"/> says which newer ones failed verification and why.</summary>
    [MessagePackObject]
    public sealed record LatestCheckpoint([property: Key(0)] string JobId, [property: Key(1)] long Step, [property: Key(2)] int Epoch,
                                          [property: Key(3)] string Path, [property: Key(4)] string Skipped) : IOrchestratorMessage;

    /// <summary>Job manager → store: keep me informed (answered with a <see cref="CheckpointsChanged"/> for every job on disk).</summary>
    [MessagePackObject]
    public sealed record WatchCheckpoints([property: Key(0)] int Unused = 0) : IOrchestratorMessage;

    /// <summary>Store → watchers: a job's checkpoints now, oldest first (after a write, an evaluation or retention).</summary>
    [MessagePackObject]
    public sealed record CheckpointsChanged([property: Key(0)] string JobId, [property: Key(1)] IReadOnlyList<JobProtocol.CheckpointView> Checkpoints) : IOrchestratorMessage;

    /// <summary>Store → watchers: a snapshot could not be written (disk full, permissions); training goes on. <paramref name="LatestGood"/>: the newest verified checkpoint's step (-1: none).</summary>
    [MessagePackObject]
    public sealed record CheckpointWriteFailed([property: Key(0)] string JobId, [property: Key(1)] long Step, [property: Key(2)] string Reason,
                                               [property: Key(3)] long LatestGood) : IOrchestratorMessage;
}
