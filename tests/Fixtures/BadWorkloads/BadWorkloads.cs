using Orchestrator.Sdk;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Fixtures;

/// <summary>Not a workload at all.</summary>
public sealed class NotAWorkload
{
    public int Value => 1;
}

/// <summary>A workload whose constructor fails, as one whose data is missing would.</summary>
public sealed class ThrowingConstructor : Workload<Module<Tensor, Tensor>>
{
    public ThrowingConstructor(WorkloadContext context) => throw new InvalidOperationException("the corpus is missing");
    public override Module<Tensor, Tensor> CreateModel() => throw new NotImplementedException();
    public override WorkloadData OpenData(DataSplit split, Device device) => throw new NotImplementedException();
    public override Tensor LossSum(Module<Tensor, Tensor> model, Batch batch) => throw new NotImplementedException();
}

/// <summary>A workload whose model factory fails.</summary>
public sealed class ThrowingModel : Workload<Module<Tensor, Tensor>>
{
    public ThrowingModel(WorkloadContext context) => context.Args.Int("layers", 1, min: 1);
    public override Module<Tensor, Tensor> CreateModel() => throw new InvalidOperationException("no such layer type: 'mamba'");
    public override WorkloadData OpenData(DataSplit split, Device device) => throw new NotImplementedException();
    public override Tensor LossSum(Module<Tensor, Tensor> model, Batch batch) => throw new NotImplementedException();
}
