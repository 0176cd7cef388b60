using Orchestrator.Core.Jobs;
using Orchestrator.Training.Checkpoints;
using Orchestrator.Training.Sampling;

namespace Orchestrator.Training.Engine;

/// <summary>One optimizer step of a run: step <paramref name="EpochStep"/> of <paramref name="Plan"/>'s epoch, number <paramref name="Step"/> overall (from 0).</summary>
public sealed record ScheduledStep(EpochPlan Plan, int EpochStep, long Step)
{
    public bool EndsEpoch => EpochStep + 1 == Plan.StepsPerEpoch;

    /// <summary>The position once this step is applied.</summary>
    public TrainingPosition After => EndsEpoch
        ? new TrainingPosition(Step + 1, Plan.Epoch + 1, 0, Plan.GlobalBatch)
        : new TrainingPosition(Step + 1, Plan.Epoch, EpochStep + 1, Plan.GlobalBatch);

    /// <summary>A checkpoint follows every <paramref name="everySteps"/>-th step, the last step of every epoch and the run's last step.</summary>
    public bool IsCheckpoint(int everySteps, long totalSteps) => EndsEpoch || Step + 1 == totalSteps || (everySteps > 0 && (Step + 1) % everySteps == 0);
}

/// <summary>
/// The steps a run takes, for the single-process reference and for every worker alike: the job's
/// epochs of DistributedSampler plans for a world of <c>worldSize</c> replicas, capped by maxSteps,
/// optionally starting from a checkpoint's position instead of step 0.
/// </summary>
public sealed class StepSchedule
{
    private readonly JobSpec _job;
    private readonly int _trainCount;
    private readonly int _worldSize;
    private readonly TrainingPosition _start;

    public StepSchedule(JobSpec job, int trainCount, int worldSize, TrainingPosition? start = null)
    {
        _job = job;
        _trainCount = trainCount;
        _worldSize = worldSize;
        int globalBatch = worldSize * job.BatchSizePerDevice;
        _start = start ?? new TrainingPosition(0, 0, 0, globalBatch);
        long perEpoch = (trainCount + globalBatch - 1) / globalBatch;
        long remaining = _start.Epoch >= job.Epochs ? 0 : perEpoch - _start.EpochStep + perEpoch * (job.Epochs - _start.Epoch - 1);
        long total = _start.Step + Math.Max(0, remaining);
        TotalSteps = job.MaxSteps is { } max ? Math.Min(max, total) : total;
    }

    public long FirstStep => _start.Step;
    public long TotalSteps { get; }

    public IEnumerable<ScheduledStep> Steps()
    {
        long step = _start.Step;
        for (int epoch = _start.Epoch; epoch < _job.Epochs && step < TotalSteps; epoch++)
        {
            var plan = new EpochPlan(_trainCount, _job.Seed, epoch, _worldSize, _job.BatchSizePerDevice);
            for (int s = epoch == _start.Epoch ? _start.EpochStep : 0; s < plan.StepsPerEpoch && step < TotalSteps; s++, step++)
                yield return new ScheduledStep(plan, s, step);
        }
    }
}
