namespace Orchestrator.Training.Sampling;

/// <summary>
/// One epoch of data-parallel sampling with DistributedSampler semantics: a permutation from
/// (seed, epoch); replica r owns every W-th position starting at r. Step k's global batch is the
/// positions [k·W·b, (k+1)·W·b) of the permutation, and replica r's part of it is exactly the
/// positions ≡ r (mod W) — so W replicas with batch b see the same samples per step as one replica
/// with batch W·b. No sample is padded in or dropped: the last step may be short, and then the
/// replicas' parts differ in size by at most one.
/// </summary>
public sealed class EpochPlan
{
    private readonly int[] _order;

    public EpochPlan(int sampleCount, long seed, int epoch, int worldSize, int batchPerReplica)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchPerReplica, 1);
        WorldSize = worldSize;
        BatchPerReplica = batchPerReplica;
        Epoch = epoch;
        _order = EpochPermutation.Create(sampleCount, seed, epoch);
        GlobalBatch = worldSize * batchPerReplica;
        StepsPerEpoch = (sampleCount + GlobalBatch - 1) / GlobalBatch;
    }

    public int Epoch { get; }
    public int WorldSize { get; }
    public int BatchPerReplica { get; }
    public int GlobalBatch { get; }
    public int StepsPerEpoch { get; }
    public int SampleCount => _order.Length;
    public ReadOnlySpan<int> Order => _order;

    /// <summary>How many samples the whole world processes in step <paramref name="step"/> of this epoch.</summary>
    public int GlobalCount(int step)
    {
        CheckStep(step);
        return Math.Min(GlobalBatch, SampleCount - step * GlobalBatch);
    }

    /// <summary>The samples of step <paramref name="step"/> across all replicas, in order.</summary>
    public ReadOnlySpan<int> GlobalIndices(int step) => _order.AsSpan(step * GlobalBatch, GlobalCount(step));

    /// <summary>Replica <paramref name="rank"/>'s samples for step <paramref name="step"/> (possibly empty on a short last step).</summary>
    public int[] ReplicaIndices(int step, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, WorldSize);
        int start = step * GlobalBatch, end = start + GlobalCount(step);
        var result = new int[Math.Max(0, (end - start - rank + WorldSize - 1) / WorldSize)];
        for (int p = start + rank, i = 0; p < end; p += WorldSize, i++) result[i] = _order[p];
        return result;
    }

    /// <summary>Replica <paramref name="rank"/>'s whole shard of the epoch (DistributedSampler without padding).</summary>
    public int[] Shard(int rank)
    {
        var shard = new List<int>(SampleCount / WorldSize + 1);
        for (int p = rank; p < SampleCount; p += WorldSize) shard.Add(_order[p]);
        return shard.ToArray();
    }

    private void CheckStep(int step)
    {
        if (step < 0 || step >= StepsPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"epoch has {StepsPerEpoch} steps");
    }
}
