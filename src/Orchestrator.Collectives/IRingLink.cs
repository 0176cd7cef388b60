using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives;

/// <summary>
/// The engine's view of the network: its two ring neighbours. Sends must not block (they enqueue);
/// the link takes ownership of the message, including a chunk's pooled payload, which it returns
/// with <see cref="RingBuffers.Return"/> once the bytes are written (or hands to the receiving engine,
/// which returns it). Received messages go to <see cref="RingAllReduce.Deliver"/>.
/// </summary>
public interface IRingLink
{
    void SendRight(IRingMessage message);
    void SendLeft(IRingMessage message);
}

/// <summary>
/// A link that sends a chunk straight from the caller's buffer, without copying it into a payload
/// first (the <c>tcp</c> link: its writer thread hands the bucket's bytes to the socket). The engine
/// keeps such a chunk's memory unchanged until the neighbour has acknowledged it: ring all-reduce
/// never writes a region again while its last send may be in flight (the final value of a segment
/// can only arrive after this rank's partial sum of it was received), and a collective using this
/// link returns only when every chunk it sent is acknowledged.
/// </summary>
public interface IZeroCopyRingLink : IRingLink
{
    void SendChunkRight(int generation, long collective, int fromRank, int sequence, ReadOnlyMemory<float> source);
}
