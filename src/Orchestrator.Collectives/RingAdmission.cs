using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives;

/// <summary>
/// Which ring messages a rank accepts, whatever their generation: numbers from the network are checked
/// before the engine acts on them. Chunks come only from the left-hand neighbour, credits only from the
/// right-hand one (and count at most a window), aborts only from a neighbour and naming ranks of this
/// ring; anything else is refused (dropped and counted), never an exception.
/// </summary>
public static class RingAdmission
{
    /// <summary>The longest abort report kept; a longer one is cut.</summary>
    public const int MaxReportChars = 4096;

    /// <summary>Why <paramref name="message"/> is refused at <paramref name="ring"/>'s rank, or null when it is admitted.</summary>
    public static string? Refusal(IRingMessage message, RingTopology ring, int window) => message switch
    {
        RingChunk c when c.FromRank != ring.Left => $"a chunk from rank {c.FromRank}, which is not the left-hand neighbour ({ring.Left})",
        RingChunk c when c.Sequence < 0 || c.Length < 0 => $"a chunk with sequence {c.Sequence} and length {c.Length}",
        RingCredit c when c.FromRank != ring.Right => $"a credit from rank {c.FromRank}, which is not the right-hand neighbour ({ring.Right})",
        RingCredit c when c.Count < 1 || c.Count > window => $"a credit of {c.Count} chunk(s), outside [1, {window}]",
        RingAbort a when a.FromRank != ring.Left && a.FromRank != ring.Right => $"an abort from rank {a.FromRank}, which is not a neighbour",
        RingAbort a when a.OriginRank < 0 || a.OriginRank >= ring.Size => $"an abort from origin rank {a.OriginRank}, outside a ring of {ring.Size}",
        RingAbort a when a.SuspectRanks is { } s && (s.Length > ring.Size || s.Any(r => r < 0 || r >= ring.Size)) =>
            $"an abort naming ranks [{string.Join(",", a.SuspectRanks.Take(8))}], outside a ring of {ring.Size}",
        IRingMessage m when m.Collective < 0 => $"collective {m.Collective}",
        _ => null,
    };
}
