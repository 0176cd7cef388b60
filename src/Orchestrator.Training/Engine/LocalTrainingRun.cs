using System.Diagnostics;
using System.Globalization;
using Orchestrator.Collectives;
using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Safetensors;
using Orchestrator.Training.Checkpoints;
using static TorchSharp.torch;

namespace Orchestrator.Training.Engine;

public sealed record TrainingProgress(int Epoch, int Epochs, long Step, long TotalSteps, double Loss, double SamplesPerSecond);

public sealed record LocalRunResult(HeldOutMetrics Metrics, long Steps, int Epochs, double SamplesPerSecond, string WeightsPath, TimeSpan Elapsed);

/// <summary>
/// The single-replica reference (<c>orchestrator run</c>): one replica, whose step is the job's global
/// batch (workers × devicesPerWorker × batchSizePerDevice) over the same sample order that the job's
/// replicas see together, taken as one micro-batch per replica shard with gradients accumulated. A
/// W-replica job must follow this run's trajectory.
/// </summary>
public static class LocalTrainingRun
{
    public static long TotalSteps(JobSpec job, int trainCount) => new StepSchedule(job, trainCount, job.WorldSize).TotalSteps;

    /// <param name="checkpointDir">Where to write a checkpoint every <c>checkpoint.everySteps</c> and at each epoch's end (none when null).</param>
    /// <param name="resume">A checkpoint of this job to continue from: the run then equals the uninterrupted one bit for bit.</param>
    public static LocalRunResult Run(JobSpec job, IWorkload workload, Device device, string weightsPath,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellation = default,
        string? checkpointDir = null, TrainingSnapshot? resume = null)
    {
        using var replica = new Replica(job, workload, device);
        if (resume is not null)
        {
            if (resume.Model != job.Model) throw new CheckpointInvalidException($"the checkpoint holds a '{resume.Model}' model, the job trains '{job.Model}'");
            resume.RestoreInto(replica);
        }
        var schedule = new StepSchedule(job, replica.TrainCount, job.WorldSize, resume?.ContinueWith(job.GlobalBatchSize));
        long totalSteps = schedule.TotalSteps;
        replica.TotalSteps = totalSteps;
        long step = schedule.FirstStep, samples = 0;
        int epochsRun = resume?.Position.Epoch ?? 0;
        var clock = Stopwatch.StartNew();
        var report = new ProgressWindow(progress, job.Epochs, totalSteps);
        var acrossWorkers = job.Workers > 1 ? new GradientBuffer(replica.Model) : null;
        var workerSums = acrossWorkers is null ? [] : Enumerable.Range(0, job.Workers).Select(_ => new float[acrossWorkers.Values.Length]).ToArray();
        var wire = WireCodec.Parse(job.AllReduce.Compression);
        int bucketElements = job.AllReduce.BucketBytes / sizeof(float);

        // The job's replicas' shards as micro-batches of one step, added up as the cluster adds them:
        // each worker's devices first, then across the workers in the ring's order of addition, with the
        // job's compression (RingArithmetic). The arithmetic is the cluster's, so the two agree to the bit.
        foreach (var next in schedule.Steps())
        {
            cancellation.ThrowIfCancellationRequested();
            var plan = next.Plan;
            int count = plan.GlobalCount(next.EpochStep);
            double lossSum = 0;
            for (int worker = 0; worker < job.Workers; worker++)
            {
                for (int d = 0; d < job.DevicesPerWorker; d++)
                    lossSum += replica.ComputeGradients(plan.ReplicaIndices(next.EpochStep, worker * job.DevicesPerWorker + d), count, accumulate: d > 0);
                if (acrossWorkers is null) continue;
                acrossWorkers.Accumulate(replica, first: true);
                acrossWorkers.Values.Span.CopyTo(workerSums[worker]);
            }
            if (acrossWorkers is not null)
            {
                RingArithmetic.Reduce(workerSums, bucketElements, wire, acrossWorkers.Values.Span);
                acrossWorkers.Scatter([replica]);
            }
            replica.ApplyStep(next.Step);
            step = next.Step + 1;
            epochsRun = plan.Epoch + 1;
            samples += count;
            report.Add(plan.Epoch, step, lossSum, count, samples / clock.Elapsed.TotalSeconds);
            if (checkpointDir is not null && next.IsCheckpoint(job.Checkpoint.EverySteps, totalSteps))
                CheckpointFolder.Write(checkpointDir, TrainingSnapshot.Capture(replica, job, next.After, generation: 1, GradientBuffer.Digest(replica.Model)));
        }
        double samplesPerSecond = samples / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        report.Flush(samplesPerSecond);

        var evaluation = replica.Evaluate();
        ModelWeights.Save(replica.Model, weightsPath, new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["job"] = job.Name,
            ["model"] = job.Model,
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["epochs"] = epochsRun.ToString(CultureInfo.InvariantCulture),
        });
        return new LocalRunResult(evaluation, step, epochsRun, samplesPerSecond, Path.GetFullPath(weightsPath), clock.Elapsed);
    }

    /// <summary>Reports the mean loss of the steps since the last report, at most a few times per second.</summary>
    private sealed class ProgressWindow(IProgress<TrainingProgress>? sink, int epochs, long totalSteps)
    {
        private readonly Stopwatch _sinceReport = Stopwatch.StartNew();
        private double _lossSum;
        private long _count;
        private int _epoch;
        private long _step;

        public void Add(int epoch, long step, double lossSum, int count, double samplesPerSecond)
        {
            _lossSum += lossSum;
            _count += count;
            _epoch = epoch;
            _step = step;
            if (_sinceReport.ElapsedMilliseconds >= 250 || step == totalSteps) Flush(samplesPerSecond);
        }

        public void Flush(double samplesPerSecond)
        {
            if (sink is null || _count == 0) return;
            sink.Report(new TrainingProgress(_epoch + 1, epochs, _step, totalSteps, _lossSum / _count, samplesPerSecond));
            _lossSum = 0;
            _count = 0;
            _sinceReport.Restart();
        }
    }
}
