using Orchestrator.Core.Jobs;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Orchestrator.Training.Optim;

/// <summary>
/// Builds the job's optimizer (TorchSharp's SGD and Adam update rules, which follow PyTorch's, run with
/// their Scalars kept alive: see <see cref="ScalarSafeSgd"/>) and its LR schedule.
/// </summary>
public static class OptimizerFactory
{
    public static optim.Optimizer Create(OptimizerSpec spec, IEnumerable<Parameter> parameters) => spec.Type switch
    {
        "sgd" => new ScalarSafeSgd(parameters, spec.Lr, momentum: spec.Momentum, weightDecay: spec.WeightDecay),
        "adam" => new ScalarSafeAdam(parameters, spec.Lr, beta1: spec.Beta1, beta2: spec.Beta2, eps: spec.Eps, weightDecay: spec.WeightDecay),
        _ => throw new ArgumentException($"unknown optimizer type '{spec.Type}'"),
    };

    /// <summary>Linear warmup from lr/warmup to lr over the first warmupSteps steps (step counted from 0), then constant.</summary>
    public static double LearningRateAt(OptimizerSpec optimizer, LrScheduleSpec schedule, long step) =>
        schedule.WarmupSteps > 0 && step < schedule.WarmupSteps
            ? optimizer.Lr * (step + 1) / schedule.WarmupSteps
            : optimizer.Lr;

    public static void SetLearningRate(optim.Optimizer optimizer, double lr)
    {
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
    }
}
