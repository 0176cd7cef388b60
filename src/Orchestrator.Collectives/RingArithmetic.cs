namespace Orchestrator.Collectives;

/// <summary>
/// What a ring all-reduce computes, without a ring: <c>orchestrator run</c> uses it to follow a
/// multi-worker job's arithmetic to the bit. Each bucket is cut into one segment per rank exactly as
/// <see cref="RingSchedule"/> cuts it; segment s starts at rank s and picks up each next rank's values
/// on its way around (the received partial sum, as it travelled, plus the rank's own, in float32), and
/// the last rank of the chain holds the sum. With a 16-bit <see cref="WireFormat"/> each partial sum is
/// rounded as it leaves a rank and the final one once more by its owner, as <see cref="RingAllReduce"/> does.
/// </summary>
public static class RingArithmetic
{
    /// <summary>Writes into <paramref name="result"/> the all-reduce of the workers' buffers (all of <paramref name="result"/>'s length).</summary>
    public static void Reduce(IReadOnlyList<float[]> workers, int bucketElements, WireFormat format, Span<float> result)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers.Count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketElements, 1);
        foreach (var w in workers)
            if (w.Length < result.Length) throw new ArgumentException("every worker's buffer must be as long as the result");
        int n = workers.Count;
        if (n == 1)
        {
            workers[0].AsSpan(0, result.Length).CopyTo(result);
            return;
        }
        var rounding = format == WireFormat.Float32 ? [] : new byte[64 * 1024];
        for (int bucket = 0; bucket < result.Length; bucket += bucketElements)
        {
            int length = Math.Min(bucketElements, result.Length - bucket);
            for (int s = 0; s < n; s++)
            {
                int start = bucket + (int)((long)s * length / n), end = bucket + (int)((long)(s + 1) * length / n);
                if (end == start) continue;
                var sum = result[start..end];
                workers[s].AsSpan(start, end - start).CopyTo(sum);
                for (int k = 1; k < n; k++)
                {
                    if (format != WireFormat.Float32) WireCodec.Round(format, sum, rounding);   // as it travels to the next rank
                    WireCodec.Add(sum, workers[(s + k) % n].AsSpan(start, end - start));
                }
                if (format != WireFormat.Float32) WireCodec.Round(format, sum, rounding);   // the owner keeps what it sends
            }
        }
    }
}
