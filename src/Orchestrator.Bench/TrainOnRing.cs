using System.Globalization;
using Orchestrator.Collectives;
using Orchestrator.Core.Jobs;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Workloads;
using static TorchSharp.torch;

namespace Orchestrator.Bench;

/// <summary>One rank of a job's training over the benchmark's ring: the engine a worker runs, without a cluster around it.</summary>
public static class TrainOnRing
{
    /// <summary>Trains and returns rank 0's JSON line: samples/s over all ranks, communication share, buckets (and how many left during backward).</summary>
    public static string Run(JobSpec job, int rank, int world, RingAllReduce engine)
    {
        set_num_threads(1);
        using var loaded = LoadedWorkload.Load(job);
        var result = DataParallelRun.Run(job, loaded.Workload, [CPU], new WorkerPlacement(rank, world, 1), new RingGradientReducer(engine, CancellationToken.None), weightsPath: null);
        return string.Create(CultureInfo.InvariantCulture,
            $"{{\"overlap\":{(job.AllReduce.Overlap ? "true" : "false")},\"steps\":{result.Steps},\"samplesPerSecond\":{result.SamplesPerSecond * world:F1}," +
            $"\"communicationShare\":{result.CommunicationShare:F3},\"buckets\":{result.Buckets},\"bucketsEarly\":{result.BucketsEarly}}}");
    }
}
