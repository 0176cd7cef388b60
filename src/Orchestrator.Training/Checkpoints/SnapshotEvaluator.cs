using Orchestrator.Core.Jobs;
using Orchestrator.Training.Data;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Models;
using Orchestrator.Training.Safetensors;
using static TorchSharp.torch;

namespace Orchestrator.Training.Checkpoints;

/// <summary>
/// Evaluates checkpoints on their job's held-out split, away from the training path (the checkpoint
/// actor's node). The held-out split of the last dataset used stays loaded. Not thread-safe: one caller at a time.
/// </summary>
public sealed class SnapshotEvaluator : IDisposable
{
    private DatasetSpec? _datasetSpec;
    private ImageDataset? _data;
    private DeviceData? _test;

    public EvaluationResult Evaluate(JobSpec job, string weightsFile)
    {
        if (_datasetSpec != job.Dataset || _data is null || _test is null)
        {
            _test?.Dispose();
            _data = ImageDataset.Load(DatasetLocator.Locate(job.Dataset));
            _test = new DeviceData(_data.Test, _data.Mean, _data.Std, CPU);
            _datasetSpec = job.Dataset;
        }
        using var model = ModelRegistry.Create(job.Model, new ModelInput(_data.Train.Rows, _data.Train.Columns, _data.Classes), job.Seed, CPU);
        ModelWeights.Import(model, SafetensorsCodec.ReadFile(weightsFile));
        return Replica.Evaluate(model, _test);
    }

    public void Dispose() => _test?.Dispose();
}
