using Orchestrator.Sdk;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Examples.Minimal;

/// <summary>The smallest workload: a small network learns y = sin(x) on points it makes itself.</summary>
public sealed class SineRegression : Workload<Sequential>
{
    private readonly int _hidden;
    private readonly int _samples;

    public SineRegression(WorkloadContext context)
    {
        _hidden = context.Args.Int("hidden", 32, min: 1, max: 4096);
        _samples = context.Args.Int("samples", 4096, min: 16, max: 10_000_000);
    }

    public override Sequential CreateModel() => Sequential(Linear(1, _hidden), Tanh(), Linear(_hidden, 1));

    public override WorkloadData OpenData(DataSplit split, Device device)
    {
        // Data from a fixed seed of its own, so every worker makes the same points.
        var random = new Random(split == DataSplit.Train ? 1 : 2);
        int n = split == DataSplit.Train ? _samples : _samples / 4;
        var x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 6 - 3)).ToArray();
        using var inputs = tensor(x, [n, 1]);
        using var targets = tensor(x.Select(v => MathF.Sin(v)).ToArray(), [n, 1]);
        return new TensorData(inputs, targets, device);
    }

    public override Tensor LossSum(Sequential model, Batch batch) =>
        functional.mse_loss(model.forward(batch.Inputs), batch.Targets, Reduction.Sum);
}
