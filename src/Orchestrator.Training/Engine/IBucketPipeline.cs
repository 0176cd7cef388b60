namespace Orchestrator.Training.Engine;

/// <summary>
/// A gradient reducer that can have several buckets on the wire at once (the ring all-reduce does): the
/// overlapped path begins each bucket as soon as backward makes it final, without waiting for the one
/// before it to finish, and awaits them in the order it began them. Every worker begins the same buckets
/// in the same order, so the sums are those of reducing them one after the other.
/// </summary>
public interface IBucketPipeline
{
    /// <summary>How many buckets may be begun and not yet awaited to their end.</summary>
    int InFlight { get; }

    /// <summary>Begins summing <paramref name="bucket"/> (the <paramref name="index"/>th of its step) across workers; returns at once with a number to await.</summary>
    long Begin(Memory<float> bucket, int index);

    /// <summary>
    /// Waits until bucket <paramref name="id"/> is summed (true), or until <paramref name="yieldWhen"/>, checked whenever
    /// the reducer is woken (by its own progress or <see cref="Nudge"/>), says there is something else to do (false).
    /// A failure is thrown here.
    /// </summary>
    bool Await(long id, Func<bool>? yieldWhen);

    /// <summary>Wakes a caller in <see cref="Await"/> to check its <c>yieldWhen</c> again.</summary>
    void Nudge();
}
