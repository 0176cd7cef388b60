using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Orchestrator.Training.Checkpoints;
using static Orchestrator.Core.Protocol.CheckpointProtocol;

namespace Orchestrator.Cluster.Checkpoint;

/// <summary>How a <see cref="TrainingSnapshot"/> travels: an offer describing it, then its two files back to back in chunks.</summary>
public static class SnapshotTransfer
{
    public const int ChunkBytes = 64 * 1024;   // well under the remote frame size (256,000 B)
    public const int Window = 8;
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    /// <summary>A transfer's bytes live in one array, so a snapshot is at most 2 GiB (far above the built-in models).</summary>
    public const long MaxBytes = int.MaxValue;

    public static string NewId() => Guid.NewGuid().ToString("N");

    public static (SnapshotOffer Offer, byte[] Payload) Pack(string transferId, string jobId, string specJson, TrainingSnapshot s)
    {
        var payload = new byte[s.ModelFile.Length + s.OptimizerFile.Length];
        s.ModelFile.CopyTo(payload, 0);
        s.OptimizerFile.CopyTo(payload, s.ModelFile.Length);
        var p = s.Position;
        var offer = new SnapshotOffer(transferId, jobId, specJson, s.Generation, p.Step, p.Epoch, p.EpochStep, p.GlobalBatch, s.Digest,
            s.ModelFile.Length, s.OptimizerFile.Length, Convert.ToHexStringLower(SHA256.HashData(payload)));
        return (offer, payload);
    }
}

/// <summary>The receiving end of one transfer: takes chunks in any order, and once whole checks the SHA-256 and rebuilds the snapshot.</summary>
public sealed class SnapshotAssembly
{
    private readonly byte[] _bytes;
    private readonly HashSet<long> _received = [];
    private long _count;

    public SnapshotOffer Offer { get; }

    /// <param name="maxBytes">The largest snapshot accepted (the store's <c>orchestrator.checkpoint.max-snapshot-bytes</c>): an offer is checked before anything is allocated for it.</param>
    public SnapshotAssembly(SnapshotOffer offer, long maxBytes = SnapshotTransfer.MaxBytes)
    {
        long total = offer.ModelLength + offer.OptimizerLength;
        if (offer.ModelLength < 0 || offer.OptimizerLength < 0 || total > Math.Min(maxBytes, SnapshotTransfer.MaxBytes))
            throw new InvalidDataException($"a snapshot of {total} bytes is refused: the limit is {Math.Min(maxBytes, SnapshotTransfer.MaxBytes)} bytes");
        Offer = offer;
        _bytes = new byte[total];
    }

    public bool IsComplete => _count == _bytes.LongLength;

    /// <summary>Adds a chunk; false when it does not fit the offer, overlaps another or repeats one (it is then ignored).</summary>
    public bool Add(SnapshotChunk chunk)
    {
        // Chunks are cut at fixed offsets (SnapshotTransfer.ChunkBytes), so one that does not start at such an
        // offset or is not exactly that long (the last one: what is left) would overlap another: refused.
        if (chunk.Data is null || chunk.Offset < 0 || chunk.Offset % SnapshotTransfer.ChunkBytes != 0 || chunk.Offset >= Math.Max(1, _bytes.LongLength)
            || chunk.Data.LongLength != Math.Min(SnapshotTransfer.ChunkBytes, _bytes.LongLength - chunk.Offset) || !_received.Add(chunk.Offset)) return false;
        chunk.Data.CopyTo(_bytes, chunk.Offset);
        _count += chunk.Data.Length;
        return true;
    }

    /// <summary>The snapshot, once complete and only if its bytes hash to the offer's SHA-256.</summary>
    public TrainingSnapshot Build(string jobName, string model)
    {
        if (!IsComplete) throw new InvalidDataException($"snapshot incomplete: {_count} of {_bytes.LongLength} bytes");
        if (!string.Equals(Convert.ToHexStringLower(SHA256.HashData(_bytes)), Offer.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException("snapshot bytes do not match the SHA-256 of the offer");
        var o = Offer;
        return new TrainingSnapshot(jobName, model, new TrainingPosition(o.Step, o.Epoch, o.EpochStep, o.GlobalBatch), o.Generation, o.Digest,
            _bytes[..(int)o.ModelLength], _bytes[(int)o.ModelLength..]);
    }
}

/// <summary>
/// Sends one snapshot: the offer, then chunks with at most <see cref="SnapshotTransfer.Window"/> unacknowledged.
/// Ends when the receiver's <see cref="TransferDone"/> arrives (passed to the parent) or when nothing
/// is heard for <see cref="SnapshotTransfer.Timeout"/> (a failed TransferDone to the parent).
/// </summary>
public sealed class SnapshotSender : ReceiveActor
{
    private readonly IActorRef _target;
    private readonly SnapshotOffer _offer;
    private readonly byte[] _payload;
    private long _nextOffset;

    public static Props Props(IActorRef target, SnapshotOffer offer, byte[] payload) =>
        Akka.Actor.Props.Create(() => new SnapshotSender(target, offer, payload));

    public SnapshotSender(IActorRef target, SnapshotOffer offer, byte[] payload)
    {
        _target = target;
        _offer = offer;
        _payload = payload;
        Receive<SnapshotChunkAck>(ack => { if (ack.TransferId == _offer.TransferId) SendNext(); });
        Receive<TransferDone>(done =>
        {
            if (done.TransferId != _offer.TransferId) return;
            Context.Parent.Tell(done);
            Context.Stop(Self);
        });
        Receive<ReceiveTimeout>(_ =>
        {
            Context.GetLogger().Warning("snapshot transfer {0} (job {1}, step {2}) to {3}: no answer for {4}; giving up",
                _offer.TransferId, _offer.JobId, _offer.Step, _target.Path, SnapshotTransfer.Timeout);
            Context.Parent.Tell(new TransferDone(_offer.TransferId, false, $"no answer from {_target.Path.Address} for {SnapshotTransfer.Timeout.TotalSeconds:0} s"));
            Context.Stop(Self);
        });
    }

    protected override void PreStart()
    {
        Context.SetReceiveTimeout(SnapshotTransfer.Timeout);
        _target.Tell(_offer);
        for (int i = 0; i < SnapshotTransfer.Window; i++) SendNext();
    }

    private void SendNext()
    {
        if (_nextOffset >= _payload.LongLength) return;
        int length = (int)Math.Min(SnapshotTransfer.ChunkBytes, _payload.LongLength - _nextOffset);
        _target.Tell(new SnapshotChunk(_offer.TransferId, _nextOffset, _payload.AsSpan((int)_nextOffset, length).ToArray()));
        _nextOffset += length;
    }
}
