namespace Orchestrator.Training.Engine;

/// <summary>
/// Sums over an evaluated set of samples. Sums (not means) so that exact shards from several
/// replicas add up to the same figures as one pass over the whole held-out split.
/// </summary>
public sealed record EvaluationResult(double LossSum, long Correct, long Count)
{
    public double Accuracy => Count == 0 ? 0 : (double)Correct / Count;
    public double Loss => Count == 0 ? 0 : LossSum / Count;
    public EvaluationResult Add(EvaluationResult other) => new(LossSum + other.LossSum, Correct + other.Correct, Count + other.Count);
}
