using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Safetensors;
using Orchestrator.Training.Workloads;
using static TorchSharp.torch;

namespace Orchestrator.Training.Checkpoints;

/// <summary>
/// Evaluates checkpoints on their job's held-out split, away from the training path (the checkpoint
/// actor's node). The workload and held-out split of the last job evaluated stay loaded (a checkpoint
/// of the next job replaces them). Not thread-safe: one caller at a time.
/// </summary>
public sealed class SnapshotEvaluator(Func<JobSpec, LoadedWorkload>? load = null) : IDisposable
{
    private readonly Func<JobSpec, LoadedWorkload> _load = load ?? (job => LoadedWorkload.Load(job));
    private JobSpec? _job;
    private LoadedWorkload? _workload;
    private WorkloadData? _test;

    public HeldOutMetrics Evaluate(JobSpec job, string weightsFile)
    {
        if (_job != job || _workload is null || _test is null)
        {
            Release();
            _workload = _load(job);
            _test = _workload.Workload.OpenData(DataSplit.HeldOut, CPU);
            _job = job;
        }
        using var model = SeededModel.Create(_workload.Workload, job.Seed, CPU);
        ModelWeights.Import(model, SafetensorsCodec.ReadFile(weightsFile));
        return HeldOutMetrics.From(_workload.Workload, Evaluation.Sums(_workload.Workload, model, _test, 0, _test.Count));
    }

    /// <summary>Lets go of the loaded workload (its package unloads), for instance when its job has ended.</summary>
    public void Release()
    {
        _test?.Dispose();
        _workload?.Dispose();
        (_test, _workload, _job) = (null, null, null);
    }

    public void Dispose() => Release();
}
