using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Orchestrator.Training.Models;

/// <summary>What a model needs to know about its input: single-channel images of Rows×Columns, and the class count.</summary>
public sealed record ModelInput(int Rows, int Columns, int Classes);

/// <summary>Built-in architectures by name. New models are added here and nowhere else.</summary>
public static class ModelRegistry
{
    private static readonly IReadOnlyDictionary<string, Func<ModelInput, Module<Tensor, Tensor>>> Factories =
        new Dictionary<string, Func<ModelInput, Module<Tensor, Tensor>>>(StringComparer.Ordinal)
        {
            ["mlp"] = input => new Mlp(input),
            ["lenet"] = input => new LeNet(input),
        };

    public static IReadOnlyCollection<string> Names { get; } = Factories.Keys.ToArray();

    private static readonly object SeedLock = new();

    /// <summary>Creates the model with parameters drawn from <paramref name="seed"/>, so every replica starts identical.</summary>
    public static Module<Tensor, Tensor> Create(string name, ModelInput input, long seed, Device device)
    {
        if (!Factories.TryGetValue(name, out var factory))
            throw new ArgumentException($"unknown model '{name}'; known models: {string.Join(", ", Names)}");
        // Initialization draws from libtorch's one global generator: two replicas built at once on two
        // threads would interleave their draws and start different. Seed and build as one step.
        Module<Tensor, Tensor> model;
        lock (SeedLock)
        {
            manual_seed(seed);
            model = factory(input);
        }
        return model.to(device);
    }
}
