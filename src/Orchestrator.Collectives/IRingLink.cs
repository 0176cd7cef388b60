using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives;

/// <summary>
/// The engine's view of the network: its two ring neighbours. Nothing here may block for long: the
/// engine calls these while it holds its state, from whichever thread delivered the message it is
/// reacting to. Received messages go to <see cref="RingAllReduce.Deliver"/>, never on the thread that
/// sent something: the engine holds its lock while it sends, so delivering there would re-enter it.
/// </summary>
public interface IRingLink
{
    /// <summary>
    /// Sends <paramref name="data"/> to the right-hand neighbour as chunk <paramref name="sequence"/>.
    /// The values are borrowed from the caller's bucket, never copied by the engine: a link may copy
    /// them now or write them later, because the engine does not change them before the neighbour has
    /// acknowledged them, and after a failed collective they still live in a managed array.
    /// </summary>
    void SendChunk(int generation, long collective, int fromRank, int sequence, ReadOnlyMemory<float> data);

    /// <summary>
    /// Sends <paramref name="length"/> bytes of 16-bit values to the right-hand neighbour as chunk <paramref name="sequence"/>.
    /// <paramref name="payload"/> comes from <see cref="RingBuffers"/> and is the link's from now on: it returns it
    /// there once the bytes are written or copied.
    /// </summary>
    void SendEncoded(int generation, long collective, int fromRank, int sequence, byte[] payload, int length);

    /// <summary>Control messages to the right-hand neighbour (aborts travelling around the ring).</summary>
    void SendRight(IRingMessage message);

    /// <summary>Control messages to the left-hand neighbour (credits, aborts).</summary>
    void SendLeft(IRingMessage message);
}
