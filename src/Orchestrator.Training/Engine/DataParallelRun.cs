using System.Diagnostics;
using System.Globalization;
using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Safetensors;
using Orchestrator.Training.Checkpoints;
using Orchestrator.Training.Optim;
using static TorchSharp.torch;

namespace Orchestrator.Training.Engine;

/// <summary>Sums a worker's flat gradient buffer with every other worker's, in place (blocking; the ring all-reduce in a cluster).</summary>
public interface IGradientReducer
{
    void SumAcrossWorkers(Memory<float> gradients);
}

/// <summary>This worker's place in the job: worker rank, number of workers, replicas (devices) per worker.</summary>
public sealed record WorkerPlacement(int WorkerRank, int Workers, int DevicesPerWorker)
{
    public int WorldSize => Workers * DevicesPerWorker;
    public int ReplicaRank(int localDevice) => WorkerRank * DevicesPerWorker + localDevice;
}

/// <summary>Progress of one worker: its own throughput and the share of step time spent in the all-reduce.</summary>
public sealed record WorkerProgress(int Epoch, int Epochs, long Step, long TotalSteps, double Loss, double SamplesPerSecond, double CommunicationShare,
    double LearningRate = double.NaN);

/// <summary>
/// A worker's checkpoint duties: continue from <paramref name="ResumeFrom"/> (every worker loads the
/// same snapshot), report the parameter digest at every checkpoint step (the runner compares them
/// across workers), and on rank 0 hand each snapshot to <paramref name="OnSnapshot"/>, which must
/// return at once (it is sent and written elsewhere, off the training path).
/// </summary>
/// <remarks><paramref name="Trace"/> records the phases of the steps someone asked for (<c>orchestrator trace</c>); null: never.</remarks>
public sealed record CheckpointHooks(int Generation, TrainingSnapshot? ResumeFrom, Action<TrainingSnapshot>? OnSnapshot, Action<long, string>? OnDigest,
    StepTrace? Trace = null);

/// <summary>The end of a worker's run. Held-out metrics and weights only on worker rank 0, which evaluates the whole held-out split.</summary>
/// <remarks><paramref name="BucketsEarly"/> of <paramref name="Buckets"/> reduced buckets left while backward still ran (overlapped reduction).</remarks>
public sealed record DataParallelResult(long Steps, int Epochs, double SamplesPerSecond, double CommunicationShare, string Digest,
    HeldOutMetrics? Evaluation, string? WeightsPath, long Buckets = 0, long BucketsEarly = 0);

/// <summary>
/// One worker's part of a data-parallel job (PRODUCT.md section 4): a replica per local device, each
/// on its DistributedSampler shard of every step; gradients summed over the local replicas, then
/// across workers by <see cref="IGradientReducer"/>; every replica applies the same step. With W
/// workers of D devices and batch b per replica, the trajectory is that of one replica with batch
/// W·D·b (<see cref="LocalTrainingRun"/>) up to float32 rounding.
/// </summary>
public static class DataParallelRun
{
    public static DataParallelResult Run(JobSpec job, IWorkload workload, IReadOnlyList<Device> devices, WorkerPlacement placement,
        IGradientReducer reducer, string? weightsPath, IProgress<WorkerProgress>? progress = null, CancellationToken cancellation = default,
        CheckpointHooks? checkpoints = null)
    {
        if (devices.Count != placement.DevicesPerWorker)
            throw new ArgumentException($"{devices.Count} device(s) given for {placement.DevicesPerWorker} replica(s) per worker");
        var replicas = new List<Replica>();
        try
        {
            foreach (var device in devices) replicas.Add(new Replica(job, workload, device));
            if (checkpoints?.ResumeFrom is { } snapshot)
            {
                if (snapshot.Model != job.Model) throw new CheckpointInvalidException($"the checkpoint holds a '{snapshot.Model}' model, the job trains '{job.Model}'");
                foreach (var replica in replicas) snapshot.RestoreInto(replica);
            }
            return Train(job, replicas, placement, reducer, weightsPath, progress, cancellation, checkpoints);
        }
        finally
        {
            foreach (var replica in replicas) replica.Dispose();
        }
    }

    private static DataParallelResult Train(JobSpec job, List<Replica> replicas, WorkerPlacement placement, IGradientReducer reducer,
        string? weightsPath, IProgress<WorkerProgress>? progress, CancellationToken cancellation, CheckpointHooks? checkpoints)
    {
        int globalBatch = placement.WorldSize * job.BatchSizePerDevice;
        var schedule = new StepSchedule(job, replicas[0].TrainCount, placement.WorldSize, checkpoints?.ResumeFrom?.ContinueWith(globalBatch));
        long totalSteps = schedule.TotalSteps;
        foreach (var replica in replicas) replica.TotalSteps = totalSteps;
        var buffer = new GradientBuffer(replicas[0].Model);
        // Buckets reduced while the last replica's backward runs: the same sums, sooner (a world of one has nothing to reduce).
        int bucketElements = job.AllReduce.BucketBytes / sizeof(float);
        long buckets = 0, bucketsEarly = 0;
        using var overlap = job.AllReduce.Overlap && placement.Workers > 1
            ? new OverlappedReduction(buffer, replicas, reducer, bucketElements)
            : null;
        var clock = Stopwatch.StartNew();
        var sinceReport = Stopwatch.StartNew();
        long step = schedule.FirstStep, samples = 0, windowSamples = 0;
        double windowLoss = 0;
        var communication = TimeSpan.Zero;
        int epochsRun = checkpoints?.ResumeFrom?.Position.Epoch ?? 0;

        var trace = checkpoints?.Trace;
        try
        {
        foreach (var next in schedule.Steps())
        {
            cancellation.ThrowIfCancellationRequested();
            // Outside a traced window this is one comparison, and each phase below one more.
            bool traced = trace is not null && trace.BeginStep(next.Step + 1);
            var plan = next.Plan;
            int globalCount = plan.GlobalCount(next.EpochStep);
            for (int d = 0; d < replicas.Count; d++)
            {
                var indices = plan.ReplicaIndices(next.EpochStep, placement.ReplicaRank(d));
                var replica = replicas[d];
                Func<double> compute = () => replica.ComputeGradients(indices, globalCount, trace: traced ? trace : null);
                windowLoss += overlap is not null && d == replicas.Count - 1 ? overlap.Backward(compute) : compute();
                windowSamples += indices.Length;
                samples += indices.Length;
            }
            long phase = traced ? Stopwatch.GetTimestamp() : 0;
            if (overlap is null)
            {
                buffer.Gather(replicas);
                if (traced) trace!.Span("gather", phase);
            }
            else if (traced) trace!.Span("gather", overlap.GatherStarted, overlap.GatherEnded, -1);
            var reduceStart = Stopwatch.GetTimestamp();
            if (overlap is null) reducer.SumAcrossWorkers(buffer.Values);
            else
            {
                overlap.Wait(cancellation);
                buckets += (buffer.Values.Length + bucketElements - 1) / bucketElements;
                bucketsEarly += overlap.QueuedDuringBackward;
            }
            // Overlapped: what the step waited for after backward counts as communication; the trace's all-reduce
            // spans from the first bucket's departure, so every bucket lies inside it.
            communication += Stopwatch.GetElapsedTime(reduceStart);
            if (traced) { trace!.Span("all-reduce", overlap is { FirstQueuedAt: > 0 } o ? Math.Min(o.FirstQueuedAt, reduceStart) : reduceStart); phase = Stopwatch.GetTimestamp(); }
            buffer.Scatter(replicas);
            if (traced) { trace!.Span("scatter", phase); phase = Stopwatch.GetTimestamp(); }
            foreach (var replica in replicas) replica.ApplyStep(next.Step);
            if (traced) trace!.Span("optimizer", phase);
            step = next.Step + 1;
            epochsRun = plan.Epoch + 1;

            if (checkpoints is not null && next.IsCheckpoint(job.Checkpoint.EverySteps, totalSteps))
            {
                var stepDigest = GradientBuffer.Digest(replicas[0].Model);
                checkpoints.OnDigest?.Invoke(step, stepDigest);
                if (placement.WorkerRank == 0 && checkpoints.OnSnapshot is { } sink)
                {
                    phase = traced ? Stopwatch.GetTimestamp() : 0;
                    sink(TrainingSnapshot.Capture(replicas[0], job, next.After, checkpoints.Generation, stepDigest));
                    if (traced) trace!.Span("checkpoint capture", phase);
                }
            }

            if (progress is not null && (sinceReport.ElapsedMilliseconds >= 250 || step == totalSteps) && windowSamples > 0)
            {
                progress.Report(new WorkerProgress(plan.Epoch + 1, job.Epochs, step, totalSteps, windowLoss / windowSamples,
                    samples / clock.Elapsed.TotalSeconds, communication / clock.Elapsed,
                    OptimizerFactory.LearningRateAt(job.Optimizer, job.LrSchedule, next.Step, totalSteps)));
                windowLoss = 0;
                windowSamples = 0;
                sinceReport.Restart();
            }
            if (traced) trace!.EndStep(lastOfRun: step == totalSteps);
        }
        }
        finally
        {
            trace?.EndRun();   // a run that ends (or fails) inside a traced window sends what it has
        }
        double seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        double communicationShare = communication.TotalSeconds / seconds;

        var digest = GradientBuffer.Digest(replicas[0].Model);
        for (int d = 1; d < replicas.Count; d++)
            if (GradientBuffer.Digest(replicas[d].Model) is var other && other != digest)
                throw new ReplicasDivergedException($"local replicas 0 and {d} of worker {placement.WorkerRank} hold different parameters ({digest[..12]} vs {other[..12]})");

        if (placement.WorkerRank != 0 || weightsPath is null)
            return new DataParallelResult(step, epochsRun, samples / seconds, communicationShare, digest, null, null, buckets, bucketsEarly);
        var evaluation = replicas[0].Evaluate();
        ModelWeights.Save(replicas[0].Model, weightsPath, new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["job"] = job.Name,
            ["model"] = job.Model,
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["epochs"] = epochsRun.ToString(CultureInfo.InvariantCulture),
            ["world_size"] = placement.WorldSize.ToString(CultureInfo.InvariantCulture),
            ["digest"] = digest,
        });
        return new DataParallelResult(step, epochsRun, samples / seconds, communicationShare, digest, evaluation, Path.GetFullPath(weightsPath), buckets, bucketsEarly);
    }
}

/// <summary>Replicas that must be bit-identical are not: the job fails rather than train on silently diverged copies.</summary>
public sealed class ReplicasDivergedException(string message) : Exception(message);
