using System.Buffers;

namespace Orchestrator.Collectives;

/// <summary>The pool that chunk payloads come from, so that no chunk allocates a new array.</summary>
public static class RingBuffers
{
    public static byte[] Rent(int bytes) => ArrayPool<byte>.Shared.Rent(bytes);
    public static void Return(byte[] buffer) => ArrayPool<byte>.Shared.Return(buffer);
}
