using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Orchestrator.Training.Models;

/// <summary>
/// LeNet-5 style CNN: conv 5x5 (6, padding 2) → max-pool → conv 5x5 (16) → max-pool → 120 → 84 → classes,
/// ReLU activations. For 28x28 input this is the classic 16x5x5 = 400-feature layout.
/// </summary>
public sealed class LeNet : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> conv1, conv2, fc1, fc2, fc3;

    public LeNet(ModelInput input) : base(nameof(LeNet))
    {
        int h = (input.Rows / 2 - 4) / 2, w = (input.Columns / 2 - 4) / 2;
        if (h < 1 || w < 1)
            throw new ArgumentException($"lenet needs images of at least 12x12 pixels, got {input.Rows}x{input.Columns}");
        conv1 = Conv2d(1, 6, 5, padding: 2);
        conv2 = Conv2d(6, 16, 5);
        fc1 = Linear(16 * h * w, 120);
        fc2 = Linear(120, 84);
        fc3 = Linear(84, input.Classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var y = functional.max_pool2d(functional.relu(conv1.call(x)), 2);
        y = functional.max_pool2d(functional.relu(conv2.call(y)), 2);
        y = functional.relu(fc1.call(y.flatten(1)));
        return fc3.call(functional.relu(fc2.call(y)));
    }
}
