using System.Diagnostics;
using System.Globalization;
using Orchestrator.Core.Jobs;
using Orchestrator.Training.Data;
using Orchestrator.Training.Safetensors;
using Orchestrator.Training.Sampling;
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
public sealed record WorkerProgress(int Epoch, int Epochs, long Step, long TotalSteps, double Loss, double SamplesPerSecond, double CommunicationShare);

/// <summary>The end of a worker's run. Accuracy, loss and weights only on worker rank 0, which evaluates the whole held-out split.</summary>
public sealed record DataParallelResult(long Steps, int Epochs, double SamplesPerSecond, double CommunicationShare, string Digest,
    EvaluationResult? Evaluation, string? WeightsPath);

/// <summary>
/// One worker's part of a data-parallel job (PRODUCT.md section 4): a replica per local device, each
/// on its DistributedSampler shard of every step; gradients summed over the local replicas, then
/// across workers by <see cref="IGradientReducer"/>; every replica applies the same step. With W
/// workers of D devices and batch b per replica, the trajectory is that of one replica with batch
/// W·D·b (<see cref="LocalTrainingRun"/>) up to float32 rounding.
/// </summary>
public static class DataParallelRun
{
    public static DataParallelResult Run(JobSpec job, ImageDataset data, IReadOnlyList<Device> devices, WorkerPlacement placement,
        IGradientReducer reducer, string? weightsPath, IProgress<WorkerProgress>? progress = null, CancellationToken cancellation = default)
    {
        if (devices.Count != placement.DevicesPerWorker)
            throw new ArgumentException($"{devices.Count} device(s) given for {placement.DevicesPerWorker} replica(s) per worker");
        var replicas = new List<Replica>();
        try
        {
            foreach (var device in devices) replicas.Add(new Replica(job, data, device));
            return Train(job, replicas, placement, reducer, weightsPath, progress, cancellation);
        }
        finally
        {
            foreach (var replica in replicas) replica.Dispose();
        }
    }

    private static DataParallelResult Train(JobSpec job, List<Replica> replicas, WorkerPlacement placement, IGradientReducer reducer,
        string? weightsPath, IProgress<WorkerProgress>? progress, CancellationToken cancellation)
    {
        int trainCount = replicas[0].TrainCount;
        long totalSteps = LocalTrainingRun.TotalSteps(job, trainCount);
        var buffer = new GradientBuffer(replicas[0].Model);
        var clock = Stopwatch.StartNew();
        var sinceReport = Stopwatch.StartNew();
        long step = 0, samples = 0, windowSamples = 0;
        double windowLoss = 0;
        var communication = TimeSpan.Zero;
        int epochsRun = 0;

        for (int epoch = 0; epoch < job.Epochs && step < totalSteps; epoch++)
        {
            var plan = new EpochPlan(trainCount, job.Seed, epoch, placement.WorldSize, job.BatchSizePerDevice);
            epochsRun = epoch + 1;
            for (int s = 0; s < plan.StepsPerEpoch && step < totalSteps; s++)
            {
                cancellation.ThrowIfCancellationRequested();
                int globalCount = plan.GlobalCount(s);
                for (int d = 0; d < replicas.Count; d++)
                {
                    var indices = plan.ReplicaIndices(s, placement.ReplicaRank(d));
                    windowLoss += replicas[d].ComputeGradients(indices, globalCount);
                    windowSamples += indices.Length;
                    samples += indices.Length;
                }
                buffer.Gather(replicas);
                var reduceStart = Stopwatch.GetTimestamp();
                reducer.SumAcrossWorkers(buffer.Values);
                communication += Stopwatch.GetElapsedTime(reduceStart);
                buffer.Scatter(replicas);
                foreach (var replica in replicas) replica.ApplyStep(step);
                step++;

                if (progress is not null && (sinceReport.ElapsedMilliseconds >= 250 || step == totalSteps) && windowSamples > 0)
                {
                    progress.Report(new WorkerProgress(epoch + 1, job.Epochs, step, totalSteps, windowLoss / windowSamples,
                        samples / clock.Elapsed.TotalSeconds, communication / clock.Elapsed));
                    windowLoss = 0;
                    windowSamples = 0;
                    sinceReport.Restart();
                }
            }
        }
        double seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        double communicationShare = communication.TotalSeconds / seconds;

        var digest = GradientBuffer.Digest(replicas[0].Model);
        for (int d = 1; d < replicas.Count; d++)
            if (GradientBuffer.Digest(replicas[d].Model) is var other && other != digest)
                throw new ReplicasDivergedException($"local replicas 0 and {d} of worker {placement.WorkerRank} hold different parameters ({digest[..12]} vs {other[..12]})");

        if (placement.WorkerRank != 0 || weightsPath is null)
            return new DataParallelResult(step, epochsRun, samples / seconds, communicationShare, digest, null, null);
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
        return new DataParallelResult(step, epochsRun, samples / seconds, communicationShare, digest, evaluation, Path.GetFullPath(weightsPath));
    }
}

/// <summary>Replicas that must be bit-identical are not: the job fails rather than train on silently diverged copies.</summary>
public sealed class ReplicasDivergedException(string message) : Exception(message);
