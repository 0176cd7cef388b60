using static TorchSharp.torch;

namespace Orchestrator.Sdk;

/// <summary>
/// The base class of a workload: a model of type <typeparamref name="TModel"/>, its data and its loss.
/// A workload has a public constructor taking a <see cref="WorkloadContext"/> (or none) that reads its
/// arguments from <see cref="WorkloadContext.Args"/>; an argument it does not read is refused.
/// The optimizer, learning-rate schedule and gradient clipping come from the job file, not from here.
/// </summary>
public abstract class Workload<TModel> : IWorkload where TModel : nn.Module
{
    /// <summary>Builds the model (seeded and locked by the engine, so every replica starts identical).</summary>
    public abstract TModel CreateModel();

    /// <summary>Opens a split on a device; <see cref="TensorData"/> does it for data that fits in memory.</summary>
    public abstract WorkloadData OpenData(DataSplit split, Device device);

    /// <summary>The loss of <paramref name="batch"/>, <b>summed</b> over its samples: the engine divides by the step's global sample count.</summary>
    public abstract Tensor LossSum(TModel model, Batch batch);

    /// <summary>Evaluation sums over a batch; by default the summed loss alone (<c>"loss"</c>).</summary>
    public virtual IReadOnlyDictionary<string, Tensor> EvaluationSums(TModel model, Batch batch) =>
        new Dictionary<string, Tensor> { ["loss"] = LossSum(model, batch) };

    /// <summary>The metrics from the sums over <paramref name="count"/> samples; by default each sum divided by the count (a mean).</summary>
    public virtual IReadOnlyDictionary<string, double> Summarize(IReadOnlyDictionary<string, double> sums, long count) =>
        sums.ToDictionary(kv => kv.Key, kv => count == 0 ? 0 : kv.Value / count);

    /// <summary>The metric that ranks checkpoints; by default the lowest <c>"loss"</c> is best.</summary>
    public virtual MetricRanking Ranking => MetricRanking.Lower("loss");

    /// <summary>Frees what the workload holds (cached data); models and data it returned are the engine's to dispose.</summary>
    public virtual void Dispose() { }

    nn.Module IWorkload.CreateModel() => CreateModel();
    Tensor IWorkload.LossSum(nn.Module model, Batch batch) => LossSum((TModel)model, batch);
    IReadOnlyDictionary<string, Tensor> IWorkload.EvaluationSums(nn.Module model, Batch batch) => EvaluationSums((TModel)model, batch);
}
