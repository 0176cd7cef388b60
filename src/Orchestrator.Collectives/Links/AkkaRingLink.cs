using Akka.Actor;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Links;

/// <summary>
/// The <c>akka</c> transport: ring messages as Akka Remote messages between the neighbours' trainer
/// actors, through the MessagePack serializer. Akka Remote serializes later, on its own thread, so a
/// pooled payload cannot be returned after <c>Tell</c>: each chunk is copied once into an array of its
/// exact size (under 80 KB, so it never reaches the large-object heap) and the pooled one goes back at
/// once. The receiving trainer hands incoming messages to <see cref="RingAllReduce.Deliver"/>.
/// </summary>
public sealed class AkkaRingLink(IActorRef left, IActorRef right, IActorRef self) : IRingLink
{
    /// <summary>Chunks of this size stay far below the 256,000-byte frame size shipped in reference.conf.</summary>
    public const int ChunkBytes = 64 * 1024;

    public void SendRight(IRingMessage message) => right.Tell(Detach(message), self);

    public void SendLeft(IRingMessage message) => left.Tell(Detach(message), self);

    private static IRingMessage Detach(IRingMessage message)
    {
        if (message is not RingChunk chunk) return message;
        var exact = chunk.Payload.AsSpan(0, chunk.Length).ToArray();
        RingBuffers.Return(chunk.Payload);
        return chunk with { Payload = exact };
    }
}
