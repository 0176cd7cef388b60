using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>
/// The ring all-reduce's wire messages (PRODUCT.md section 4, "The data plane"). Every message
/// carries the ring's generation (messages of an older ring are dropped) and the collective's
/// number within that ring; chunks also carry a sequence number, so a lost chunk is detected,
/// never waited for in silence.
/// </summary>
public interface IRingMessage : IOrchestratorMessage
{
    int Generation { get; }
    long Collective { get; }
    int FromRank { get; }
}

/// <summary>
/// A piece of a bucket travelling to the right-hand neighbour: <see cref="Length"/> bytes of float32
/// values (little-endian) at the start of <see cref="Payload"/>. The payload is usually rented from a
/// pool and longer than <see cref="Length"/>: whoever consumes the message returns it.
/// </summary>
[MessagePackObject]
public sealed record RingChunk([property: Key(0)] int Generation, [property: Key(1)] long Collective, [property: Key(2)] int FromRank,
                               [property: Key(3)] int Sequence, [property: Key(4)] byte[] Payload, [property: Key(5)] int Length) : IRingMessage;

/// <summary>Flow control, to the left-hand neighbour: "I consumed <see cref="Count"/> more of your chunks".</summary>
[MessagePackObject]
public sealed record RingCredit([property: Key(0)] int Generation, [property: Key(1)] long Collective, [property: Key(2)] int FromRank,
                                [property: Key(3)] int Count) : IRingMessage;

/// <summary>
/// The collective is abandoned. <see cref="OriginRank"/> diagnosed <see cref="Report"/> and names the
/// ranks it suspects; <see cref="Certain"/> when it has direct evidence (a neighbour that never sent
/// a chunk, never acknowledged one, or lost one) rather than a stall that may have spread from
/// elsewhere. Every rank forwards the first abort it hears from an origin around the ring.
/// </summary>
[MessagePackObject]
public sealed record RingAbort([property: Key(0)] int Generation, [property: Key(1)] long Collective, [property: Key(2)] int FromRank,
                               [property: Key(3)] int OriginRank, [property: Key(4)] string Report, [property: Key(5)] int[] SuspectRanks,
                               [property: Key(6)] bool Certain) : IRingMessage;
