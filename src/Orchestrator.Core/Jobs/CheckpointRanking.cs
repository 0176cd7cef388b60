namespace Orchestrator.Core.Jobs;

/// <summary>
/// Which held-out metric ranks a job's checkpoints, and which way is better: the workload's own choice,
/// unless the job file's <c>checkpoint.metric</c> names another metric, which then ranks lower-is-better
/// when its name says it is a loss, perplexity or error, and higher-is-better otherwise.
/// </summary>
public static class CheckpointRanking
{
    public static (string Metric, bool HigherIsBetter) Decide(string? jobMetric, string workloadMetric, bool workloadHigherIsBetter) =>
        jobMetric is null || jobMetric == workloadMetric
            ? (workloadMetric, workloadHigherIsBetter)
            : (jobMetric, !LowerIsBetter(jobMetric));

    private static bool LowerIsBetter(string metric) =>
        metric.Contains("loss", StringComparison.OrdinalIgnoreCase) || metric.Contains("perplexity", StringComparison.OrdinalIgnoreCase)
        || metric.Contains("error", StringComparison.OrdinalIgnoreCase);

    /// <summary>The best of <paramref name="candidates"/> by <paramref name="score"/> (null: not evaluated), ties to the newest.</summary>
    public static IEnumerable<T> Order<T>(IEnumerable<T> candidates, Func<T, double?> score, bool higherIsBetter, Func<T, long> step)
    {
        var scored = candidates.Where(c => score(c) is { } v && !double.IsNaN(v));
        return (higherIsBetter ? scored.OrderByDescending(c => score(c)) : scored.OrderBy(c => score(c))).ThenByDescending(step);
    }
}
