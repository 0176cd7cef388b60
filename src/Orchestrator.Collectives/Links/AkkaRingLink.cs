using System.Runtime.InteropServices;
using Akka.Actor;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Links;

/// <summary>
/// The <c>akka</c> transport: ring messages as Akka Remote messages between the neighbours' trainer
/// actors, through our serializer. Akka Remote serializes later, on its own thread, so a chunk is
/// copied once, from the bucket into its own wire frame (<see cref="RingChunk.Frame"/>: under 80 KB,
/// so it never reaches the large-object heap), which the serializer then sends as it is. The
/// receiving trainer hands incoming messages to <see cref="RingAllReduce.Deliver"/>.
///
/// A full chunk's frame is exactly 64 KiB with its header: Akka Remote hands the received bytes over in
/// an array of that size, which the engine returns to the shared pool once applied, and the next frame
/// sent is rented from there, so the frames this link makes are recycled rather than left to the GC.
/// </summary>
public sealed class AkkaRingLink(IActorRef left, IActorRef right, IActorRef self) : IRingLink
{
    /// <summary>Chunks of this size stay far below the 256,000-byte frame size shipped in reference.conf; with the header a frame is 64 KiB.</summary>
    public static int ChunkBytes => Core.Jobs.RingLinkKind.Akka.DefaultChunkBytes;

    public void SendChunk(int generation, long collective, int fromRank, int sequence, ReadOnlyMemory<float> data) =>
        right.Tell(RingChunk.Frame(generation, collective, fromRank, sequence, MemoryMarshal.AsBytes(data.Span)), self);

    public void SendEncoded(int generation, long collective, int fromRank, int sequence, byte[] payload, int length)
    {
        right.Tell(RingChunk.Frame(generation, collective, fromRank, sequence, payload.AsSpan(0, length)), self);
        RingBuffers.Return(payload);
    }

    public void SendRight(IRingMessage message) => right.Tell(message, self);

    public void SendLeft(IRingMessage message) => left.Tell(message, self);
}
