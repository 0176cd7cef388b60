using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Training.Engine;

/// <summary>
/// One model replica on one device: the training core that the single-process run and the cluster's
/// trainers share, for any workload. A step is split in two so that gradients can be reduced in
/// between: <see cref="ComputeGradients"/> then (after an all-reduce, in the cluster) <see cref="ApplyStep"/>.
/// Not thread-safe: one compute thread drives it.
/// </summary>
public sealed class Replica : IDisposable
{
    private readonly JobSpec _job;
    private readonly IWorkload _workload;
    private readonly WorkloadData _train;
    private readonly WorkloadData _test;

    public nn.Module Model { get; }
    /// <summary>The model's parameters in registration order.</summary>
    public IReadOnlyList<TorchSharp.Modules.Parameter> Parameters { get; }
    public optim.Optimizer Optimizer { get; }
    public Device Device { get; }

    public Replica(JobSpec job, IWorkload workload, Device device)
    {
        _job = job;
        _workload = workload;
        Device = device;
        Model = SeededModel.Create(workload, job.Seed, device);
        Parameters = Model.parameters().ToArray();
        Optimizer = OptimizerFactory.Create(job.Optimizer, Model.parameters());
        _train = workload.OpenData(DataSplit.Train, device);
        _test = workload.OpenData(DataSplit.HeldOut, device);
    }

    /// <summary>The run's number of steps, at which a cosine learning-rate decay reaches its floor (set once the schedule is known).</summary>
    public long TotalSteps { get; set; }

    public int TrainCount => _train.Count;
    public int TestCount => _test.Count;

    /// <summary>
    /// Forward and backward on this replica's part of a step. The workload's loss is a sum over the
    /// samples; it is divided by the step's global sample count, so that summing the replicas' gradients
    /// gives exactly the gradient of the mean loss over the global batch, even when a short last step
    /// splits unevenly.
    /// </summary>
    /// <returns>The summed (not averaged) loss of this replica's samples.</returns>
    /// <param name="accumulate">Add to the gradients already held (a further micro-batch of the same step) instead of replacing them.</param>
    /// <param name="trace">Where the forward and backward of a traced step go (null: not traced).</param>
    public double ComputeGradients(ReadOnlySpan<int> indices, int globalCount, bool accumulate = false, StepTrace? trace = null)
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
        long started = trace is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
        var lossSum = _workload.LossSum(Model, _train.Get(indices));
        if (lossSum.numel() != 1) throw new InvalidOperationException($"the workload's loss must be a scalar (a sum over the batch), was shaped [{string.Join(",", lossSum.shape)}]");
        // An explicit Scalar that lives to the end of the method: an implicit one can be finalized while libtorch reads it (ScalarSafeSgd).
        using var divisor = globalCount.ToScalar();
        long forwardEnd = trace is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
        trace?.Span("forward", started, forwardEnd, -1);
        lossSum.div(divisor).backward();
        trace?.Span("backward", forwardEnd);
        return lossSum.to_type(ScalarType.Float32).item<float>();
    }

    /// <summary>Clips (when the job asks) and applies the optimizer with the learning rate that the schedule gives for <paramref name="globalStep"/>.</summary>
    public void ApplyStep(long globalStep)
    {
        OptimizerFactory.SetLearningRate(Optimizer, OptimizerFactory.LearningRateAt(_job.Optimizer, _job.LrSchedule, globalStep, TotalSteps));
        using var scope = NewDisposeScope();
        if (_job.Optimizer.ClipGradNorm is { } maxNorm) GradientClipping.ClipByGlobalNorm(Model.parameters(), maxNorm);
        Optimizer.step();
    }

    /// <summary>The held-out metrics over the whole held-out split.</summary>
    public HeldOutMetrics Evaluate() => HeldOutMetrics.From(_workload, EvaluateSums());

    /// <summary>Evaluation sums over samples [start, end) of the held-out split (all of it by default), exactly once each.</summary>
    public EvaluationSums EvaluateSums(int start = 0, int? end = null, int batchSize = 1000) =>
        Evaluation.Sums(_workload, Model, _test, start, end ?? _test.Count, batchSize);

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
        _train.Dispose();
        _test.Dispose();
    }
}

/// <summary>Builds a workload's model with parameters drawn from the job's seed, so that every replica starts identical.</summary>
public static class SeededModel
{
    private static readonly object SeedLock = new();

    public static nn.Module Create(IWorkload workload, long seed, Device device)
    {
        // Initialization draws from libtorch's one global generator: two replicas built at once on two
        // threads would interleave their draws and start different. Seed and build as one step.
        nn.Module model;
        lock (SeedLock)
        {
            manual_seed(seed);
            model = workload.CreateModel() ?? throw new InvalidOperationException("the workload's CreateModel returned null");
        }
        return model.to(device);
    }
}
