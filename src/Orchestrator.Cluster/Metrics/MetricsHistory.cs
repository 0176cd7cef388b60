using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Metrics;

/// <summary>
/// A job's metrics history, bounded: at most <see cref="Limit"/> points. When a point would go past the limit, the
/// older half is thinned to every other point, so a long job keeps its recent steps dense and its early ones ever
/// sparser (a week-long job stays a few hundred kilobytes) and the curve keeps its shape. Evaluations (one per
/// checkpoint, one per step) are thinned the same way past <see cref="EvaluationLimit"/>.
/// </summary>
public sealed class MetricsHistory(int limit)
{
    private List<JobProtocol.MetricsPoint> _points = [];
    private readonly SortedDictionary<long, JobProtocol.EvaluationPoint> _evaluations = [];

    public int Limit { get; } = limit >= 4 ? limit : throw new ArgumentOutOfRangeException(nameof(limit), "at least 4 points");

    /// <summary>Evaluations kept: with the points, an answer stays within the cluster's message size.</summary>
    public const int EvaluationLimit = 1000;
    public IReadOnlyList<JobProtocol.MetricsPoint> Points => _points;
    public IEnumerable<JobProtocol.EvaluationPoint> Evaluations => _evaluations.Values;

    /// <summary>
    /// Adds a point; a step at or before the last one (a recovered job steps back to its checkpoint) replaces the points
    /// from that step on, so the history is the trajectory the job's weights actually took. Returns true when the history
    /// was thinned or rewound (whoever keeps it in a file rewrites the file).
    /// </summary>
    public bool Add(JobProtocol.MetricsPoint point)
    {
        var rewound = false;
        if (_points.Count > 0 && point.Step <= _points[^1].Step)
        {
            _points = _points.Where(p => p.Step < point.Step).ToList();
            rewound = true;
        }
        _points.Add(point);
        if (_points.Count <= Limit) return rewound;
        _points = Thin(_points);
        return true;
    }

    /// <summary>Adds an evaluation; false when the step had one with the same metrics already.</summary>
    public bool Add(JobProtocol.EvaluationPoint evaluation)
    {
        if (_evaluations.TryGetValue(evaluation.Step, out var known) && known.Metrics.Count == evaluation.Metrics.Count
            && known.Metrics.All(kv => evaluation.Metrics.TryGetValue(kv.Key, out var v) && v.Equals(kv.Value))) return false;
        _evaluations[evaluation.Step] = evaluation;
        if (_evaluations.Count > EvaluationLimit)
            foreach (var step in _evaluations.Keys.Take(_evaluations.Count / 2).Where((_, i) => i % 2 == 1).ToList()) _evaluations.Remove(step);
        return true;
    }

    /// <summary>Up to <paramref name="page"/> points after step <paramref name="since"/>, and whether more follow.</summary>
    public (IReadOnlyList<JobProtocol.MetricsPoint> Points, bool More) After(long since, int page)
    {
        var after = _points.Where(p => p.Step > since).Take(page + 1).ToList();
        return after.Count > page ? (after[..page], true) : (after, false);
    }

    /// <summary>The evaluated checkpoints' held-out metrics: the workload's by name, or accuracy and loss where a checkpoint has only those.</summary>
    public static List<JobProtocol.EvaluationPoint> EvaluationsOf(IEnumerable<JobProtocol.CheckpointView> checkpoints) =>
        checkpoints.Select(c => new JobProtocol.EvaluationPoint(c.Step, c.Metrics is { Count: > 0 } named ? named
                : new[] { ("accuracy", c.Accuracy), ("loss", c.Loss) }.Where(x => x.Item2 is not null).ToDictionary(x => x.Item1, x => x.Item2!.Value)))
            .Where(e => e.Metrics.Count > 0).ToList();

    /// <summary>Every other point of the older half, all of the newer half.</summary>
    public static List<JobProtocol.MetricsPoint> Thin(IReadOnlyList<JobProtocol.MetricsPoint> points)
    {
        var half = points.Count / 2;
        return points.Take(half).Where((_, i) => i % 2 == 0).Concat(points.Skip(half)).ToList();
    }
}
