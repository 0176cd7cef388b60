using static TorchSharp.torch;

namespace Orchestrator.Sdk;

/// <summary>The train split or the held-out split, which evaluates checkpoints and the final weights.</summary>
public enum DataSplit
{
    /// <summary>The samples the engine trains on, sharded across replicas every epoch.</summary>
    Train,

    /// <summary>The samples that evaluate checkpoints and the final weights, each exactly once.</summary>
    HeldOut,
}

/// <summary>
/// What the engine calls; implement it through <see cref="Workload{TModel}"/>, which types the model.
/// One instance serves every replica of a job in a process, from the engine's compute thread (calls
/// are never concurrent), inside a dispose scope per call: tensors a call returns are the engine's.
/// </summary>
public interface IWorkload : IDisposable
{
    /// <summary>Builds the model. The engine seeds libtorch and calls this under its lock, so every replica starts identical.</summary>
    nn.Module CreateModel();

    /// <summary>Opens a split with its samples on <paramref name="device"/> (called once per replica and split).</summary>
    WorkloadData OpenData(DataSplit split, Device device);

    /// <summary>The loss of a batch as a <b>sum</b> over its samples (a scalar tensor with a gradient).</summary>
    Tensor LossSum(nn.Module model, Batch batch);

    /// <summary>Evaluation sums over a batch, by metric name (each a scalar tensor), combined exactly across shards by addition.</summary>
    IReadOnlyDictionary<string, Tensor> EvaluationSums(nn.Module model, Batch batch);

    /// <summary>The reported metrics from the sums over <paramref name="count"/> held-out samples.</summary>
    IReadOnlyDictionary<string, double> Summarize(IReadOnlyDictionary<string, double> sums, long count);

    /// <summary>The metric that ranks checkpoints (retention keeps the best by it), and which way is better.</summary>
    MetricRanking Ranking { get; }
}

/// <summary>Which metric ranks checkpoints, and whether a higher value is better.</summary>
public sealed record MetricRanking(string Metric, bool HigherIsBetter)
{
    /// <summary>Ranked by <paramref name="metric"/>, the lower the better (a loss).</summary>
    public static MetricRanking Lower(string metric) => new(metric, false);

    /// <summary>Ranked by <paramref name="metric"/>, the higher the better (an accuracy).</summary>
    public static MetricRanking Higher(string metric) => new(metric, true);
}

/// <summary>A batch on a device: what the model takes and what the loss compares against (any shapes and dtypes).</summary>
public sealed record Batch(Tensor Inputs, Tensor Targets)
{
    /// <summary>Samples in the batch (the first dimension of <see cref="Inputs"/>).</summary>
    public long Count => Inputs.shape[0];
}
