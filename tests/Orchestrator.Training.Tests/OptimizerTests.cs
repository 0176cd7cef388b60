using Orchestrator.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orchestrator.Training.Tests;

/// <summary>
/// Our SGD and Adam (<see cref="ScalarSafeSgd"/>, <see cref="ScalarSafeAdam"/>): TorchSharp's update rules to
/// the bit, and intact while garbage collections run finalizers during their native calls, which is what
/// failed TorchSharp's own SGD in a 2-worker job ("Expected false to be true ... toDouble").
/// </summary>
public sealed class OptimizerTests
{
    private const int Tensors = 16, Length = 4096;

    public static TheoryData<string> Optimizers => ["sgd", "sgd-nesterov", "adam", "adam-amsgrad"];

    private static optim.Optimizer Ours(string kind, IEnumerable<Parameter> p) => kind switch
    {
        "sgd" => new ScalarSafeSgd(p, 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 1e-4),
        "sgd-nesterov" => new ScalarSafeSgd(p, 0.05, momentum: 0.9, weightDecay: 1e-4, nesterov: true),
        "adam" => new ScalarSafeAdam(p, 0.001, weightDecay: 1e-4),
        _ => new ScalarSafeAdam(p, 0.001, weightDecay: 1e-4, amsgrad: true, maximize: true),
    };

    private static optim.Optimizer TorchSharps(string kind, IEnumerable<Parameter> p) => kind switch
    {
        "sgd" => new SGD(p, 0.05, momentum: 0.9, dampening: 0.1, weight_decay: 1e-4),
        "sgd-nesterov" => new SGD(p, 0.05, momentum: 0.9, weight_decay: 1e-4, nesterov: true),
        "adam" => new Adam(p, 0.001, weight_decay: 1e-4),
        _ => new Adam(p, 0.001, weight_decay: 1e-4, amsgrad: true, maximize: true),
    };

    /// <summary>Steps with deterministic gradients (no RNG: tests run in parallel) and returns every parameter value.</summary>
    private static float[] Train(Func<IEnumerable<Parameter>, optim.Optimizer> create, int steps, double lrChangeEvery = 7)
    {
        using var scope = NewDisposeScope();
        var parameters = Enumerable.Range(0, Tensors).Select(k => new Parameter(tensor(Values(k, 0)))).ToList();
        using var optimizer = create(parameters);
        for (int step = 0; step < steps; step++)
        {
            using var stepScope = NewDisposeScope();
            foreach (var group in optimizer.ParamGroups) group.LearningRate = group.InitialLearningRate * (1 + step % lrChangeEvery) / lrChangeEvery;
            // Gradients stay in the step's scope (reachable) while libtorch takes its own reference to them.
            for (int k = 0; k < Tensors; k++) parameters[k].grad = tensor(Values(k, step + 1));
            optimizer.step();
        }
        return parameters.SelectMany(p => p.data<float>().ToArray()).ToArray();
    }

    private static float[] Values(int k, int step)
    {
        var values = new float[Length];
        for (int i = 0; i < Length; i++) values[i] = (float)Math.Sin(0.37 * i + 1.3 * k + 0.71 * step);
        return values;
    }

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void Each_update_equals_TorchSharps_to_the_bit(string kind)
    {
        Assert.Equal(Train(p => TorchSharps(kind, p), steps: 30), Train(p => Ours(kind, p), steps: 30));
    }

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void Garbage_collections_during_the_updates_change_nothing(string kind)
    {
        var quiet = Train(p => Ours(kind, p), steps: 300);
        var stop = false;
        var collector = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            Assert.Equal(quiet, Train(p => Ours(kind, p), steps: 300));
        }
        finally
        {
            Volatile.Write(ref stop, true);
            collector.Join();
        }
    }
}
