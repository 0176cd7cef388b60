namespace Orchestrator.Collectives;

/// <summary>One chunk of one ring step: <see cref="Count"/> floats at <see cref="Offset"/> in the bucket.</summary>
public readonly record struct ChunkSpan(int Step, int Offset, int Count);

/// <summary>
/// Which chunks a rank sends and receives, in order, for one bucket. The bucket is cut into one
/// segment per rank. Reduce-scatter (steps 0..n−2): at step s rank r sends segment (r−s) and adds
/// the received segment (r−s−1) into its own; afterwards rank r holds the full sum of segment r+1.
/// All-gather (steps n−1..2n−3): the summed segments travel once around the ring and are copied.
/// What a rank sends at step s+1 is exactly what it received at step s, so outgoing chunk k (past
/// the first segment) may leave as soon as incoming chunk k − <see cref="FirstSegmentChunks"/> is in.
/// </summary>
public sealed class RingSchedule
{
    public IReadOnlyList<ChunkSpan> Outgoing { get; }
    public IReadOnlyList<ChunkSpan> Incoming { get; }
    public int ReduceSteps { get; }
    public int FirstSegmentChunks { get; }

    private RingSchedule(List<ChunkSpan> outgoing, List<ChunkSpan> incoming, int reduceSteps, int firstSegmentChunks)
    {
        Outgoing = outgoing;
        Incoming = incoming;
        ReduceSteps = reduceSteps;
        FirstSegmentChunks = firstSegmentChunks;
    }

    public static RingSchedule Create(int length, int size, int rank, int chunkElements)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkElements, 1);
        int steps = 2 * (size - 1);
        var outgoing = new List<ChunkSpan>();
        var incoming = new List<ChunkSpan>();
        for (int s = 0; s < steps; s++)
        {
            AddChunks(outgoing, s, SendSegment(s, rank, size), length, size, chunkElements);
            AddChunks(incoming, s, ReceiveSegment(s, rank, size), length, size, chunkElements);
        }
        int first = outgoing.Count(c => c.Step == 0);
        return new RingSchedule(outgoing, incoming, size - 1, first);
    }

    /// <summary>May outgoing chunk <paramref name="k"/> leave, given how many incoming chunks are applied?</summary>
    public bool IsReady(int k, int applied) => k < FirstSegmentChunks || applied > k - FirstSegmentChunks;

    public bool IsReduceStep(int step) => step < ReduceSteps;

    private static int SendSegment(int step, int rank, int size) =>
        step < size - 1 ? Mod(rank - step, size) : Mod(rank + 1 - (step - (size - 1)), size);

    private static int ReceiveSegment(int step, int rank, int size) =>
        step < size - 1 ? Mod(rank - step - 1, size) : Mod(rank - (step - (size - 1)), size);

    private static void AddChunks(List<ChunkSpan> into, int step, int segment, int length, int size, int chunkElements)
    {
        int start = (int)((long)segment * length / size), end = (int)((long)(segment + 1) * length / size);
        for (int offset = start; offset < end; offset += chunkElements)
            into.Add(new ChunkSpan(step, offset, Math.Min(chunkElements, end - offset)));
    }

    private static int Mod(int a, int n) => ((a % n) + n) % n;
}
