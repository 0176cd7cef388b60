using Orchestrator.Sdk;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Examples.TensorsClassifier;

/// <summary>
/// A two-layer classifier on a `tensors` file (train.x [N,D] float, train.y [N] integer labels, and the
/// same for test), read through the engine's strict safetensors loader. Metrics: accuracy and loss.
/// </summary>
public sealed class BlobClassifier : Workload<Sequential>
{
    private readonly IReadOnlyDictionary<string, Tensor> _data;
    private readonly int _hidden, _classes;

    public BlobClassifier(WorkloadContext context)
    {
        var path = context.Args.ExistingFile("data");
        _hidden = context.Args.Int("hidden", 64, min: 1, max: 65536);
        _data = context.ReadTensors(path);
        foreach (var name in new[] { "train.x", "train.y", "test.x", "test.y" })
            if (!_data.ContainsKey(name)) throw new WorkloadArgumentException(context.Args.Field("data"), $"{path} has no tensor '{name}'");
        _classes = (int)Math.Max(_data["train.y"].max().item<long>(), _data["test.y"].max().item<long>()) + 1;
    }

    public override Sequential CreateModel() =>
        Sequential(Linear(_data["train.x"].shape[1], _hidden), ReLU(), Linear(_hidden, _classes));

    public override WorkloadData OpenData(DataSplit split, Device device) => split == DataSplit.Train
        ? new TensorData(_data["train.x"], _data["train.y"], device)
        : new TensorData(_data["test.x"], _data["test.y"], device);

    public override Tensor LossSum(Sequential model, Batch batch) =>
        functional.cross_entropy(model.forward(batch.Inputs), batch.Targets, reduction: Reduction.Sum);

    public override IReadOnlyDictionary<string, Tensor> EvaluationSums(Sequential model, Batch batch)
    {
        var logits = model.forward(batch.Inputs);
        return new Dictionary<string, Tensor>
        {
            ["loss"] = functional.cross_entropy(logits, batch.Targets, reduction: Reduction.Sum),
            ["accuracy"] = logits.argmax(1).eq(batch.Targets).sum(),
        };
    }

    public override MetricRanking Ranking => MetricRanking.Higher("accuracy");

    public override void Dispose()
    {
        foreach (var t in _data.Values) t.Dispose();
    }
}
