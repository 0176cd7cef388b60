using Akka.Actor;
using Akka.Event;
using Orchestrator.Cluster.Checkpoint;
using Orchestrator.Training.Checkpoints;
using static Orchestrator.Core.Protocol.CheckpointProtocol;

namespace Orchestrator.Cluster.Worker;

/// <summary>
/// Rank 0's checkpoints on their way to the checkpoint store, a child of its trainer. The compute
/// thread hands each captured snapshot here and goes on training. One transfer at a time (a
/// <see cref="SnapshotSender"/> child), so checkpoints are committed in step order; while one is on its
/// way only the newest snapshot waits: an older waiting one is dropped, with a line in the job's log.
/// </summary>
public sealed class SnapshotUploader : ReceiveActor
{
    /// <summary>Compute thread → uploader: send this snapshot (or keep it as the next one).</summary>
    public sealed record Upload(TrainingSnapshot Snapshot);

    /// <summary>Trainer → uploader, when training has ended: answer <see cref="Idle"/> once nothing is on its way or waiting.</summary>
    public sealed record TellWhenIdle
    {
        public static readonly TellWhenIdle Instance = new();
    }

    /// <summary>Uploader → trainer: the last snapshot has been answered for (stored or refused).</summary>
    public sealed record Idle
    {
        public static readonly Idle Instance = new();
    }

    /// <summary>Uploader → trainer: a line for the job's log, which the trainer keeps.</summary>
    public sealed record JobNote(LogLevel Level, string Text);

    private readonly IActorRef _store;
    private readonly string _jobId;
    private readonly string _specJson;
    private string? _inFlight;   // the transfer id of the snapshot on its way
    private long _inFlightStep;
    private TrainingSnapshot? _waiting;
    private IActorRef? _idleWatcher;

    public static Props Props(IActorRef store, string jobId, string specJson) =>
        Akka.Actor.Props.Create(() => new SnapshotUploader(store, jobId, specJson));

    public SnapshotUploader(IActorRef store, string jobId, string specJson)
    {
        _store = store;
        _jobId = jobId;
        _specJson = specJson;
        Receive<Upload>(u =>
        {
            if (_inFlight is null) { SendOrNext(u.Snapshot); return; }
            if (_waiting is { } dropped)
                Context.Parent.Tell(new JobNote(LogLevel.WarningLevel,
                    $"checkpoint at step {dropped.Position.Step} skipped: the one before it is still being sent, and a newer one is ready"));
            _waiting = u.Snapshot;
        });
        // From the sender child: the store's answer, or its own give-up after a silence.
        Receive<TransferDone>(done =>
        {
            if (done.TransferId != _inFlight) return;
            _inFlight = null;
            // A failed write is reported to the job's status by the store; here it only needs a log line.
            if (!done.Ok) Context.Parent.Tell(new JobNote(LogLevel.WarningLevel, $"checkpoint at step {_inFlightStep} not stored: {done.Detail}"));
            var next = _waiting;
            _waiting = null;
            if (next is not null) SendOrNext(next);
            else if (_idleWatcher is { } watcher) watcher.Tell(Idle.Instance);
        });
        Receive<TellWhenIdle>(_ =>
        {
            if (_inFlight is null) Sender.Tell(Idle.Instance);
            else _idleWatcher = Sender;
        });
    }

    /// <summary>
    /// Starts the snapshot's transfer; one that cannot even be packed (over 2 GiB) is a log line, and the uploader goes
    /// on as if the store had refused it (an exception here would restart the actor and lose who waits for it).
    /// </summary>
    private void SendOrNext(TrainingSnapshot snapshot)
    {
        try
        {
            var (offer, payload) = SnapshotTransfer.Pack(SnapshotTransfer.NewId(), _jobId, _specJson, snapshot);
            Context.ActorOf(SnapshotSender.Props(_store, offer, payload));
            _inFlight = offer.TransferId;
            _inFlightStep = snapshot.Position.Step;
        }
        catch (Exception ex) when (ex is OverflowException or OutOfMemoryException or ArgumentException)
        {
            Context.Parent.Tell(new JobNote(LogLevel.WarningLevel, $"checkpoint at step {snapshot.Position.Step} not sent: {ex.Message}"));
            if (_idleWatcher is { } watcher) watcher.Tell(Idle.Instance);
        }
    }
}
