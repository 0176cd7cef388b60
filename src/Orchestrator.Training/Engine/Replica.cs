using Orchestrator.Core.Jobs;
using Orchestrator.Training.Data;
using Orchestrator.Training.Models;
using Orchestrator.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Orchestrator.Training.Engine;

/// <summary>
/// One model replica on one device: the training core that the single-process run and the cluster's
/// trainers share. A step is split in two so that gradients can be reduced in between:
/// <see cref="ComputeGradients"/> then (after an all-reduce, in the cluster) <see cref="ApplyStep"/>.
/// Not thread-safe: one compute thread drives it.
/// </summary>
public sealed class Replica : IDisposable
{
    private readonly JobSpec _job;
    private readonly DeviceData _train;
    private readonly DeviceData _test;

    public Module<Tensor, Tensor> Model { get; }
    public optim.Optimizer Optimizer { get; }
    public Device Device { get; }

    public Replica(JobSpec job, ImageDataset data, Device device)
    {
        _job = job;
        Device = device;
        Model = ModelRegistry.Create(job.Model, new ModelInput(data.Train.Rows, data.Train.Columns, data.Classes), job.Seed, device);
        Optimizer = OptimizerFactory.Create(job.Optimizer, Model.parameters());
        _train = new DeviceData(data.Train, data.Mean, data.Std, device);
        _test = new DeviceData(data.Test, data.Mean, data.Std, device);
    }

    public int TrainCount => _train.Count;
    public int TestCount => _test.Count;

    /// <summary>
    /// Forward and backward on this replica's part of a step. The loss is summed and divided by the
    /// step's global sample count, so that summing the replicas' gradients gives exactly the gradient
    /// of the mean loss over the global batch, even when a short last step splits unevenly.
    /// </summary>
    /// <returns>The summed (not averaged) loss of this replica's samples.</returns>
    /// <param name="accumulate">Add to the gradients already held (a further micro-batch of the same step) instead of replacing them.</param>
    public double ComputeGradients(ReadOnlySpan<int> indices, int globalCount, bool accumulate = false)
    {
        using var scope = NewDisposeScope();
        Model.train();
        if (!accumulate) Optimizer.zero_grad();
        if (indices.Length == 0)
        {
            if (!accumulate)
                foreach (var p in Model.parameters())
                {
                    // The scope keeps the wrapper reachable while libtorch takes its own reference (a detached
                    // temporary could be finalized during the call); disposing it later leaves the gradient be.
                    var zero = zeros_like(p);
                    p.grad = zero;
                }
            return 0;
        }
        var positions = new long[indices.Length];
        for (int i = 0; i < positions.Length; i++) positions[i] = indices[i];
        var index = tensor(positions, ScalarType.Int64).to(Device);
        var logits = Model.forward(_train.Images.index_select(0, index));
        var lossSum = functional.cross_entropy(logits, _train.Labels.index_select(0, index), reduction: Reduction.Sum);
        // An explicit Scalar that lives to the end of the method: an implicit one can be finalized while libtorch reads it (ScalarSafeSgd).
        using var divisor = globalCount.ToScalar();
        lossSum.div(divisor).backward();
        return lossSum.item<float>();
    }

    /// <summary>Applies the optimizer with the learning rate that the schedule gives for <paramref name="globalStep"/>.</summary>
    public void ApplyStep(long globalStep)
    {
        OptimizerFactory.SetLearningRate(Optimizer, OptimizerFactory.LearningRateAt(_job.Optimizer, _job.LrSchedule, globalStep));
        using var scope = NewDisposeScope();
        Optimizer.step();
    }

    /// <summary>Evaluates samples [start, end) of the held-out split (all of it by default), exactly once each.</summary>
    public EvaluationResult Evaluate(int start = 0, int? end = null, int batchSize = 1000) => Evaluate(Model, _test, start, end, batchSize);

    /// <summary>Evaluates <paramref name="model"/> on samples [start, end) of a held-out split, exactly once each.</summary>
    public static EvaluationResult Evaluate(Module<Tensor, Tensor> model, DeviceData test, int start = 0, int? end = null, int batchSize = 1000)
    {
        var Model = model;
        var _test = test;
        int stop = end ?? _test.Count;
        double lossSum = 0;
        long correct = 0;
        Model.eval();
        try
        {
            using var noGrad = no_grad();
            for (int b = start; b < stop; b += batchSize)
            {
                using var scope = NewDisposeScope();
                int n = Math.Min(batchSize, stop - b);
                var x = _test.Images.narrow(0, b, n);
                var y = _test.Labels.narrow(0, b, n);
                var logits = Model.forward(x);
                lossSum += functional.cross_entropy(logits, y, reduction: Reduction.Sum).item<float>();
                correct += logits.argmax(1).eq(y).sum().item<long>();
            }
        }
        finally { Model.train(); }
        return new EvaluationResult(lossSum, correct, Math.Max(0, stop - start));
    }

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
        _train.Dispose();
        _test.Dispose();
    }
}
