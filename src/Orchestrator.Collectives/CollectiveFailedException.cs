namespace Orchestrator.Collectives;

/// <summary>
/// A collective that did not complete: a peer died, stalled, or a chunk was lost. Every surviving
/// rank gets one, naming the rank(s) it found missing, within the deadline plus the abort grace.
/// </summary>
public sealed class CollectiveFailedException(string message, IReadOnlyList<int> missingRanks) : Exception(message)
{
    public IReadOnlyList<int> MissingRanks { get; } = missingRanks;
}
