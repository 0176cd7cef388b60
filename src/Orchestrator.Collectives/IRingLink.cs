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
