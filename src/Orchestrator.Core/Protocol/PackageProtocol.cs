using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>
/// Workload packages travel from the coordinator's package store (<c>/user/package-store</c> on every
/// coordinator node) to the workers and the checkpoint node that run them: the fetcher asks for one
/// chunk at a time by offset, with a bounded number of requests outstanding, so no message is larger
/// than a chunk. The fetcher checks the whole package against its SHA-256 before it is ever loaded.
/// </summary>
public static class PackageProtocol
{
    /// <summary>Chunks are well under the remote frame size (256,000 bytes).</summary>
    public const int ChunkBytes = 64 * 1024;

    /// <summary>Fetcher → store: bytes [<paramref name="Offset"/>, <paramref name="Offset"/> + <paramref name="Length"/>) of the package.</summary>
    [MessagePackObject]
    public sealed record FetchPackageChunk([property: Key(0)] string Sha256, [property: Key(1)] long Offset, [property: Key(2)] int Length) : IOrchestratorMessage;

    /// <summary>Store → fetcher: a chunk, and the package's whole length.</summary>
    [MessagePackObject]
    public sealed record PackageChunk([property: Key(0)] string Sha256, [property: Key(1)] long Offset, [property: Key(2)] long TotalLength,
                                      [property: Key(3)] byte[] Data) : IOrchestratorMessage;

    /// <summary>Store → fetcher: the package cannot be served (unknown, unreadable, or the request was out of range).</summary>
    [MessagePackObject]
    public sealed record PackageUnavailable([property: Key(0)] string Sha256, [property: Key(1)] string Reason) : IOrchestratorMessage;
}
