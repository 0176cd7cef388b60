using Akka.Actor;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Links;

/// <summary>
/// The <c>akka</c> transport: ring messages as Akka Remote messages between the neighbours' trainer
/// actors, through the MessagePack serializer. Akka Remote serializes later, on its own thread, so a
/// pooled payload cannot be returned after <c>Tell</c>: it is handed over and left to the GC. A payload
/// that is longer than its chunk (the last chunk of a segment) is first copied into an array of its
/// exact size; a full 64 KiB chunk's rented array already is (under 85 KB, so never on the
/// large-object heap). The receiving trainer hands incoming messages to <see cref="RingAllReduce.Deliver"/>.
/// </summary>
public sealed class AkkaRingLink(IActorRef left, IActorRef right, IActorRef self) : IRingLink
{
    /// <summary>Chunks of this size stay far below the 256,000-byte frame size shipped in reference.conf.</summary>
    public const int ChunkBytes = 64 * 1024;

    public void SendRight(IRingMessage message) => right.Tell(Detach(message), self);

    public void SendLeft(IRingMessage message) => left.Tell(Detach(message), self);

    private static IRingMessage Detach(IRingMessage message)
    {
        if (message is not RingChunk chunk || chunk.Payload.Length == chunk.Length) return message;
        var exact = chunk.Payload.AsSpan(0, chunk.Length).ToArray();
        RingBuffers.Return(chunk.Payload);
        return chunk with { Payload = exact };
    }
}
