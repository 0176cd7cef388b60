namespace Orchestrator.Core.Jobs;

/// <summary>
/// What the job file may say about a gradient link (<c>allReduce.transport</c>): its name, and the
/// defaults and limits of its chunk size (wire bytes per ring message), window (chunks in flight to a
/// neighbour) and credit batch (chunks acknowledged at once). The links themselves are built by the
/// registry in Orchestrator.Collectives, which has one entry for each kind here.
/// </summary>
public sealed record RingLinkKind(string Name, int DefaultChunkBytes, int MaxChunkBytes, int DefaultWindow, int MaxWindow)
{
    public const int MinChunkBytes = 4096;

    /// <summary>
    /// <c>akka</c>: ring messages through Akka Remote. A chunk and its 24-byte header make a 64 KiB frame: under
    /// the .NET large-object threshold and far below Akka Remote's 256,000-byte maximum frame. A window of 16,
    /// because Akka Remote has no backpressure of its own.
    /// </summary>
    public static readonly RingLinkKind Akka = new("akka", AkkaFrameChunk, AkkaFrameChunk, 16, 256);

    private const int AkkaFrameChunk = 64 * 1024 - Protocol.RingChunk.HeaderBytes;

    /// <summary><c>tcp</c>: a socket to each neighbour; 1 MiB chunks keep it busy with few frames, a window of 4 bounds what is queued.</summary>
    public static readonly RingLinkKind Tcp = new("tcp", 1024 * 1024, 16 * 1024 * 1024, 4, 64);

    public static IReadOnlyList<RingLinkKind> All { get; } = [Akka, Tcp];

    public static RingLinkKind Named(string name) =>
        All.FirstOrDefault(k => k.Name == name) ?? throw new ArgumentException($"unknown gradient link '{name}' (expected one of {string.Join(", ", All.Select(k => k.Name))})");
}
