using Orchestrator.Core.Jobs;

namespace Orchestrator.Collectives;

/// <summary>
/// Tuning of the engine. On the Akka link <see cref="ChunkBytes"/> stays under 80 KB so that chunks never
/// land on the .NET large-object heap and stay well below Akka Remote's frame size; the TCP link uses
/// large chunks. <see cref="Window"/> bounds the chunks in flight per link (Akka Remote has no
/// backpressure of its own).
/// <see cref="CreditBatch"/> is how many chunks a receiver acknowledges at once (0: a quarter of the window);
/// <see cref="Format"/> how values travel (<see cref="ChunkBytes"/> counts wire bytes, so a 16-bit chunk holds twice the values).
/// <see cref="InFlight"/> is how many buckets' collectives may run at once on the ring: the next bucket starts while the
/// last chunks of the one before are still travelling round. Each has its own window, so up to
/// <see cref="InFlight"/> × <see cref="Window"/> chunks may be in flight per link.
/// </summary>
public sealed record CollectiveOptions(int BucketBytes, int ChunkBytes, int Window, TimeSpan Deadline, TimeSpan AbortGrace,
    int CreditBatch = 0, WireFormat Format = WireFormat.Float32, int InFlight = AllReduceSpec.DefaultInFlight)
{
    /// <summary>The most collectives <see cref="InFlight"/> may allow (as the job file's <c>allReduce.inFlight</c>).</summary>
    public const int MaxInFlight = AllReduceSpec.MaxInFlight;

    public static CollectiveOptions Default { get; } = new(4 * 1024 * 1024, 64 * 1024, 16, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1));

    /// <summary>The TCP link's chunks may be large; the Akka link keeps its own under the frame size.</summary>
    public const int MaxChunkBytes = 16 * 1024 * 1024;

    public int BucketElements => BucketBytes / sizeof(float);
    /// <summary>Values per chunk: the chunk's wire bytes over the bytes of one value on the wire.</summary>
    public int ChunkElements => ChunkBytes / WireCodec.BytesPerValue(Format);

    public int EffectiveCreditBatch => CreditBatch > 0 ? CreditBatch : Math.Max(1, Window / 4);

    public void Validate()
    {
        if (BucketBytes < 4 || BucketBytes % 4 != 0) throw new ArgumentException($"bucket size must be a positive multiple of 4 bytes, was {BucketBytes}");
        if (ChunkBytes < 4 || ChunkBytes % 4 != 0 || ChunkBytes > MaxChunkBytes) throw new ArgumentException($"chunk size must be a multiple of 4 in [4, {MaxChunkBytes}] bytes, was {ChunkBytes}");
        if (Window < 1) throw new ArgumentException($"window must be at least 1, was {Window}");
        if (CreditBatch < 0 || CreditBatch > Window) throw new ArgumentException($"credit batch must be in [0, window {Window}], was {CreditBatch}");
        if (InFlight < 1 || InFlight > MaxInFlight) throw new ArgumentException($"collectives in flight must be in [1, {MaxInFlight}], was {InFlight}");
        if (Deadline <= TimeSpan.Zero) throw new ArgumentException($"deadline must be positive, was {Deadline}");
    }
}
