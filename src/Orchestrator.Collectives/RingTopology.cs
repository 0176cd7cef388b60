namespace Orchestrator.Collectives;

/// <summary>One participant's place in a ring: the ring's generation, its rank, and every rank's node (for error messages).</summary>
public sealed record RingTopology(int Generation, int Rank, IReadOnlyList<string> Nodes)
{
    public int Size => Nodes.Count;
    public int Left => (Rank - 1 + Size) % Size;
    public int Right => (Rank + 1) % Size;
    public string Describe(int rank) => $"rank {rank} ({Nodes[rank]})";
    /// <summary>What one rank sends to its neighbour per all-reduce, as a share of the data: 2(n-1)/n.</summary>
    public double SendShare => 2.0 * (Size - 1) / Size;
}
