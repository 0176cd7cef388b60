using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Orchestrator.Training.Models;

/// <summary>784-256-128-10 multilayer perceptron with ReLU. Field names become PyTorch parameter names (fc1.weight, …).</summary>
public sealed class Mlp : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> fc1, fc2, fc3;

    public Mlp(ModelInput input) : base(nameof(Mlp))
    {
        fc1 = Linear(input.Rows * input.Columns, 256);
        fc2 = Linear(256, 128);
        fc3 = Linear(128, input.Classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        fc3.call(functional.relu(fc2.call(functional.relu(fc1.call(x.flatten(1))))));
}
