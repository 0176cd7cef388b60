using static TorchSharp.torch;

namespace Orchestrator.Sdk;

/// <summary>What the engine hands a workload's constructor: its arguments and a reader for tensor files.</summary>
public sealed class WorkloadContext
{
    private readonly Func<string, IReadOnlyDictionary<string, Tensor>> _readTensors;

    /// <summary>Made by the engine (or by a test of the workload).</summary>
    /// <param name="args">The job file's <c>workload.args</c>.</param>
    /// <param name="readTensors">Reads a safetensors file into CPU tensors by name (the engine's strict loader).</param>
    public WorkloadContext(WorkloadArgs args, Func<string, IReadOnlyDictionary<string, Tensor>> readTensors)
    {
        Args = args;
        _readTensors = readTensors;
    }

    /// <summary>The job file's <c>workload.args</c>, read with errors that name the field.</summary>
    public WorkloadArgs Args { get; }

    /// <summary>
    /// Reads every tensor of a safetensors file into CPU tensors, by name (the caller disposes them),
    /// through the engine's strict loader: a damaged file is refused before a tensor is made.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> ReadTensors(string path) => _readTensors(path);
}
