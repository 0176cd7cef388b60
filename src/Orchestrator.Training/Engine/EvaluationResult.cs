using Orchestrator.Sdk;
using static TorchSharp.torch;

namespace Orchestrator.Training.Engine;

/// <summary>
/// A workload's evaluation sums over a set of held-out samples, by metric. Sums (not means) so that
/// exact shards from several replicas add up to the same figures as one pass over the whole split.
/// </summary>
public sealed record EvaluationSums(IReadOnlyDictionary<string, double> Sums, long Count)
{
    public EvaluationSums Add(EvaluationSums other) =>
        new(Sums.Keys.Union(other.Sums.Keys).ToDictionary(k => k, k => Sums.GetValueOrDefault(k) + other.Sums.GetValueOrDefault(k)), Count + other.Count);
}

/// <summary>A workload's held-out metrics by name, and the one that ranks checkpoints.</summary>
public sealed record HeldOutMetrics(IReadOnlyDictionary<string, double> Values, string RankMetric, bool HigherIsBetter)
{
    public double? Accuracy => Values.TryGetValue("accuracy", out var a) ? a : null;
    public double? Loss => Values.TryGetValue("loss", out var l) ? l : null;

    public static HeldOutMetrics From(IWorkload workload, EvaluationSums sums)
    {
        var ranking = workload.Ranking;
        return new HeldOutMetrics(new Dictionary<string, double>(workload.Summarize(sums.Sums, sums.Count)), ranking.Metric, ranking.HigherIsBetter);
    }

    /// <summary>The metrics in one line, ranked metric first: <c>accuracy 0.8514, loss 0.4120</c>.</summary>
    public string Describe() => string.Join(", ", Values.OrderBy(kv => kv.Key == RankMetric ? 0 : 1).ThenBy(kv => kv.Key, StringComparer.Ordinal)
        .Select(kv => FormattableString.Invariant($"{kv.Key} {kv.Value:F4}")));
}

/// <summary>Evaluation of a model on held-out data: batches in order, no gradients, eval mode restored to train after.</summary>
public static class Evaluation
{
    public static EvaluationSums Sums(IWorkload workload, nn.Module model, WorkloadData test, int start, int stop, int batchSize = 1000)
    {
        var sums = new Dictionary<string, double>(StringComparer.Ordinal);
        model.eval();
        try
        {
            using var noGrad = no_grad();
            var indices = new int[Math.Min(batchSize, Math.Max(0, stop - start))];
            for (int b = start; b < stop; b += batchSize)
            {
                using var scope = NewDisposeScope();
                int n = Math.Min(batchSize, stop - b);
                for (int i = 0; i < n; i++) indices[i] = b + i;
                foreach (var (name, value) in workload.EvaluationSums(model, test.Get(indices.AsSpan(0, n))))
                {
                    if (value.numel() != 1) throw new InvalidOperationException($"the workload's evaluation sum '{name}' must be a scalar, was shaped [{string.Join(",", value.shape)}]");
                    sums[name] = sums.GetValueOrDefault(name) + value.to_type(ScalarType.Float64).item<double>();
                }
            }
        }
        finally { model.train(); }
        return new EvaluationSums(sums, Math.Max(0, stop - start));
    }
}
