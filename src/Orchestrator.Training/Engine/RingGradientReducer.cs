using System.Diagnostics;
using Orchestrator.Collectives;

namespace Orchestrator.Training.Engine;

/// <summary>
/// Gradients summed across workers by the ring all-reduce: a whole buffer (its buckets pipelined by the engine), or
/// bucket by bucket with several on the wire when backward is overlapped. <paramref name="reduced"/> is told of each
/// reduction (when it began, <see cref="Stopwatch.GetTimestamp"/>, and its elements), for metrics.
/// </summary>
public sealed class RingGradientReducer(RingAllReduce engine, CancellationToken cancellation, Action<long, int>? reduced = null)
    : IGradientReducer, IBucketPipeline
{
    private readonly Queue<(long Began, int Length)> _begun = new();   // awaited in the order begun

    public void SumAcrossWorkers(Memory<float> gradients)
    {
        var began = Stopwatch.GetTimestamp();
        engine.AllReduce(gradients, cancellation);
        reduced?.Invoke(began, gradients.Length);
    }

    public int InFlight => engine.Options.InFlight;

    public long Begin(Memory<float> bucket, int index)
    {
        var began = Stopwatch.GetTimestamp();
        var id = engine.Begin(bucket, index, cancellation);
        _begun.Enqueue((began, bucket.Length));
        return id;
    }

    public bool Await(long id, Func<bool>? yieldWhen)
    {
        if (!engine.Await(id, cancellation, yieldWhen)) return false;
        var (began, length) = _begun.Dequeue();
        reduced?.Invoke(began, length);
        return true;
    }

    public void Nudge() => engine.Nudge();
}
