using System.Collections.Concurrent;
using Orchestrator.Core.Jobs;
using Orchestrator.Training.Workloads;

namespace Orchestrator.Training.Tests;

/// <summary>
/// The real Fashion-MNIST, found where the product finds it (the Debian package dataset-fashion-mnist,
/// which .ci/run installs), as the built-in workloads that train on it. A machine without it fails
/// these tests with the locator's message.
/// </summary>
internal static class TestData
{
    private static readonly ConcurrentDictionary<string, Lazy<ImageClassification>> Workloads = new();

    /// <summary>The built-in <paramref name="model"/> on Fashion-MNIST, loaded once per test run.</summary>
    public static ImageClassification Workload(string model = "mlp") =>
        Workloads.GetOrAdd(model, m => new Lazy<ImageClassification>(() => new ImageClassification(m, new DatasetSpec("fashion-mnist", null)))).Value;

    /// <summary>A model as a replica would start: built from the seed under the engine's lock.</summary>
    public static TorchSharp.torch.nn.Module Model(string name, long seed) => Engine.SeededModel.Create(Workload(name), seed, TorchSharp.torch.CPU);
}
