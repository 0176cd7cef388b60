using static TorchSharp.torch;

namespace Orchestrator.Sdk;

/// <summary>What the engine hands a workload's constructor: its arguments and a reader for tensor files.</summary>
public sealed class WorkloadContext
{
    private readonly Func<string, IReadOnlyDictionary<string, Tensor>> _readTensors;
    private readonly Action<string> _log;

    /// <summary>Made by the engine (or by a test of the workload).</summary>
    /// <param name="args">The job file's <c>workload.args</c>.</param>
    /// <param name="readTensors">Reads a safetensors file into CPU tensors by name (the engine's strict loader).</param>
    /// <param name="log">Where <see cref="Log"/> writes (default: standard error).</param>
    public WorkloadContext(WorkloadArgs args, Func<string, IReadOnlyDictionary<string, Tensor>> readTensors, Action<string>? log = null)
    {
        Args = args;
        _readTensors = readTensors;
        _log = log ?? Console.Error.WriteLine;
    }

    /// <summary>
    /// Writes a line to the job's log: on a cluster, what <c>orchestrator logs &lt;job-id&gt;</c> shows with this worker's
    /// rank; in <c>orchestrator run</c>, standard error. Safe from any thread; a line is cut at 1,000 characters, and a
    /// workload that writes faster than the worker can send loses lines (the log says how many).
    /// </summary>
    public void Log(string message) => _log(message);

    /// <summary>The job file's <c>workload.args</c>, read with errors that name the field.</summary>
    public WorkloadArgs Args { get; }

    /// <summary>
    /// Reads every tensor of a safetensors file into CPU tensors, by name (the caller disposes them),
    /// through the engine's strict loader: a damaged file is refused before a tensor is made.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> ReadTensors(string path) => _readTensors(path);
}
