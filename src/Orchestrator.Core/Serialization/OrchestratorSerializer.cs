using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using MessagePack;
using MessagePack.Resolvers;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Core.Serialization;

/// <summary>
/// The one serializer for everything that crosses processes or is persisted: MessagePack with
/// integer keys, bound to <see cref="IOrchestratorMessage"/>. Manifests are short constants that are
/// never renamed, because the journal keeps them; there is no type-name resolution anywhere.
/// </summary>
public sealed class OrchestratorSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>Akka reserves 1–100.</summary>
    public const int SerializerId = 4711;

    // Untrusted-data mode: bounded depth and hash-collision-resistant maps for bytes from the network.
    private static readonly MessagePackSerializerOptions Options =
        MessagePackSerializerOptions.Standard.WithResolver(StandardResolver.Instance).WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>Type ↔ manifest; append only. The serializer spec checks that every marker type is here.</summary>
    public static readonly IReadOnlyDictionary<Type, string> Manifests = new Dictionary<Type, string>
    {
        [typeof(ClusterProtocol.RequestInventory)] = "c.inv?",
        [typeof(ClusterProtocol.WorkerInventory)] = "c.inv",
        [typeof(TrainingProtocol.StartTraining)] = "t.start",
        [typeof(TrainingProtocol.TrainingStarted)] = "t.started",
        [typeof(TrainingProtocol.BeginTraining)] = "t.begin",
        [typeof(TrainingProtocol.TrainingProgress)] = "t.prog",
        [typeof(TrainingProtocol.TrainingCompleted)] = "t.done",
        [typeof(TrainingProtocol.TrainingFailed)] = "t.fail",
        [typeof(TrainingProtocol.StopTraining)] = "t.stop",
        [typeof(TrainingProtocol.TrainingStopped)] = "t.stopped",
        [typeof(TrainingProtocol.CheckpointDigest)] = "t.digest",
        [typeof(CheckpointProtocol.SnapshotOffer)] = "k.offer",
        [typeof(CheckpointProtocol.SnapshotChunk)] = "k.chunk",
        [typeof(CheckpointProtocol.SnapshotChunkAck)] = "k.ack",
        [typeof(CheckpointProtocol.TransferDone)] = "k.done",
        [typeof(CheckpointProtocol.FetchCheckpoint)] = "k.fetch",
        [typeof(CheckpointProtocol.GetLatestCheckpoint)] = "k.latest?",
        [typeof(CheckpointProtocol.LatestCheckpoint)] = "k.latest",
        [typeof(CheckpointProtocol.WatchCheckpoints)] = "k.watch",
        [typeof(CheckpointProtocol.CheckpointsChanged)] = "k.changed",
        [typeof(CheckpointProtocol.CheckpointWriteFailed)] = "k.failed",
        [typeof(CheckpointProtocol.UploaderFor)] = "k.uploader",
        [typeof(JobProtocol.SubmitJob)] = "j.submit",
        [typeof(JobProtocol.JobAccepted)] = "j.accepted",
        [typeof(JobProtocol.JobRejected)] = "j.rejected",
        [typeof(JobProtocol.QueueFull)] = "j.full",
        [typeof(JobProtocol.JobManagerUnavailable)] = "j.down",
        [typeof(JobProtocol.GetJob)] = "j.get",
        [typeof(JobProtocol.JobNotFound)] = "j.404",
        [typeof(JobProtocol.ListJobs)] = "j.list?",
        [typeof(JobProtocol.JobList)] = "j.list",
        [typeof(JobProtocol.CancelJob)] = "j.cancel",
        [typeof(JobProtocol.CancelResult)] = "j.cancelled",
        [typeof(JobProtocol.JobStatus)] = "j.status",
        [typeof(JobProtocol.GetCheckpoints)] = "j.ckpts?",
        [typeof(JobProtocol.GetJobMetrics)] = "j.metrics?",
        [typeof(JobProtocol.JobMetrics)] = "j.metrics",
        [typeof(JobProtocol.CheckpointList)] = "j.ckpts",
        [typeof(JobProtocol.GetWorkers)] = "j.workers?",
        [typeof(JobProtocol.WorkerList)] = "j.workers",
        [typeof(JobEvents.JobSubmitted)] = "e.submitted",
        [typeof(JobEvents.JobStarted)] = "e.started",
        [typeof(JobEvents.JobCompleted)] = "e.completed",
        [typeof(JobEvents.JobFailed)] = "e.failed",
        [typeof(JobEvents.JobCancelled)] = "e.cancelled",
        [typeof(JobEvents.JobRequeued)] = "e.requeued",
        [typeof(JobEvents.JobRecovering)] = "e.recovering",
        [typeof(JobEvents.JobBookSnapshot)] = "e.snapshot",
        [typeof(PackageProtocol.FetchPackageChunk)] = "p.fetch",
        [typeof(PackageProtocol.PackageChunk)] = "p.chunk",
        [typeof(PackageProtocol.PackageUnavailable)] = "p.none",
        [typeof(RingChunk)] = "r.chunk",
        [typeof(RingCredit)] = "r.credit",
        [typeof(RingAbort)] = "r.abort",
        [typeof(TrainingProtocol.JobLogBatch)] = "t.log",
        [typeof(JobProtocol.GetJobLogs)] = "j.logs?",
        [typeof(JobProtocol.JobLogs)] = "j.logs",
        [typeof(TrainingProtocol.TraceSteps)] = "t.trace",
        [typeof(TrainingProtocol.TraceSpans)] = "t.spans",
        [typeof(JobProtocol.RequestTrace)] = "j.trace!",
        [typeof(JobProtocol.TraceRefused)] = "j.trace-no",
        [typeof(JobProtocol.GetTrace)] = "j.trace?",
        [typeof(JobProtocol.TraceResult)] = "j.trace",
    };

    private static readonly IReadOnlyDictionary<string, Type> Types = Manifests.ToDictionary(p => p.Value, p => p.Key);

    public override int Identifier => SerializerId;

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var manifest)
            ? manifest
            : throw new ArgumentException($"{nameof(OrchestratorSerializer)} has no manifest for {o.GetType()}; add it to {nameof(Manifests)}");

    public override byte[] ToBinary(object o)
    {
        // Chunks are bulk data: a fixed binary frame, which the Akka link builds ready to send.
        if (o is RingChunk chunk) return chunk.ToFrame();
        return MessagePackSerializer.Serialize(o.GetType(), o, Options);
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!Types.TryGetValue(manifest, out var type))
            throw new SerializationException($"unknown manifest [{manifest}]");
        try
        {
            if (type == typeof(RingChunk)) return RingChunk.FromFrame(bytes);
            var message = MessagePackSerializer.Deserialize(type, bytes, Options)
                          ?? throw new SerializationException($"empty message for manifest [{manifest}]");
            CompleteMessages.Check(message);
            return message;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or InvalidDataException)
        {
            throw new SerializationException($"malformed message for manifest [{manifest}]: {ex.Message}", ex);
        }
    }
}
