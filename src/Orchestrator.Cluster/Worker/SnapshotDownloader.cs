using Akka.Actor;
using Orchestrator.Cluster.Checkpoint;
using Orchestrator.Cluster.Membership;
using Orchestrator.Training.Checkpoints;
using static Orchestrator.Core.Protocol.CheckpointProtocol;

namespace Orchestrator.Cluster.Worker;

/// <summary>
/// Fetches the checkpoint a trainer resumes from, a child of that trainer: asks the store for it, takes
/// its offer and chunks (from the store's node only), acknowledges each chunk, checks the whole and
/// tells the trainer <see cref="Downloaded"/> or <see cref="Failed"/>, then stops. How long the
/// trainer waits is its own business (its compute thread gives up after a while).
/// </summary>
public sealed class SnapshotDownloader : ReceiveActor
{
    public sealed record Downloaded(TrainingSnapshot Snapshot);

    /// <summary>Why the checkpoint cannot be resumed from: the store's refusal, or what is wrong with what it sent.</summary>
    public sealed record Failed(string Reason);

    private readonly IActorRef _store;
    private readonly string _jobId;
    private readonly long _step;
    private readonly string _jobName;
    private readonly string _model;
    private readonly string _transferId = SnapshotTransfer.NewId();
    private SnapshotAssembly? _assembly;

    public static Props Props(IActorRef store, string jobId, long step, string jobName, string model) =>
        Akka.Actor.Props.Create(() => new SnapshotDownloader(store, jobId, step, jobName, model));

    public SnapshotDownloader(IActorRef store, string jobId, long step, string jobName, string model)
    {
        _store = store;
        _jobId = jobId;
        _step = step;
        _jobName = jobName;
        _model = model;
        Receive<SnapshotOffer>(offer =>
        {
            if (offer.TransferId != _transferId || !FromStore() || _assembly is not null) return;
            try { _assembly = new SnapshotAssembly(offer); }
            catch (InvalidDataException ex) { End(new Failed(ex.Message)); }
        });
        Receive<SnapshotChunk>(chunk =>
        {
            if (chunk.TransferId != _transferId || _assembly is null || !FromStore()) return;
            _assembly.Add(chunk);
            Sender.Tell(new SnapshotChunkAck(chunk.TransferId, chunk.Offset));
            if (!_assembly.IsComplete) return;
            Sender.Tell(new TransferDone(chunk.TransferId, true, "received"));
            try { End(new Downloaded(_assembly.Build(_jobName, _model))); }
            catch (InvalidDataException ex) { End(new Failed($"checkpoint at step {_step}: {ex.Message}")); }
        });
        Receive<TransferDone>(done =>
        {
            if (done.TransferId == _transferId && !done.Ok && FromStore()) End(new Failed(done.Detail));
        });
    }

    protected override void PreStart() => _store.Tell(new FetchCheckpoint(_transferId, _jobId, _step));

    private void End(object outcome)
    {
        Context.Parent.Tell(outcome);
        Context.Stop(Self);
    }

    /// <summary>The offer and chunks come from the checkpoint store's node (or this one, where it runs here).</summary>
    private bool FromStore() => Senders.IsLocal(Sender) || _store.Path.Address.Equals(Sender.Path.Address);
}
