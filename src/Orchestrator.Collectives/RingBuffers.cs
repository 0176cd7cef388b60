using System.Buffers;
using System.Numerics;

namespace Orchestrator.Collectives;

/// <summary>The pool that chunk payloads come from, so that no chunk allocates a new array.</summary>
public static class RingBuffers
{
    public static byte[] Rent(int bytes) => ArrayPool<byte>.Shared.Rent(bytes);

    /// <summary>
    /// Returns a payload to the pool. Payloads that a link allocated itself (a deserialized Akka message)
    /// may come back here too: the shared pool only takes power-of-two sizes, so others are left to the GC.
    /// </summary>
    public static void Return(byte[] buffer)
    {
        if (buffer.Length >= 16 && BitOperations.IsPow2(buffer.Length)) ArrayPool<byte>.Shared.Return(buffer);
    }
}
