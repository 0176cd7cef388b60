using static TorchSharp.torch;

namespace Orchestrator.Sdk;

/// <summary>One split of a workload's data on one device: a sample count and batches by sample index.</summary>
public abstract class WorkloadData : IDisposable
{
    /// <summary>Number of samples; the engine's sampler shards indices [0, Count).</summary>
    public abstract int Count { get; }

    /// <summary>The samples at <paramref name="indices"/> (in that order) as one batch on this split's device.</summary>
    public abstract Batch Get(ReadOnlySpan<int> indices);

    /// <summary>Frees the split's tensors.</summary>
    public virtual void Dispose() { }
}

/// <summary>
/// A split held whole in two tensors whose first dimension is the sample: batches are gathered on the
/// device with <c>index_select</c>. The tensors are moved to the device once and owned by this object.
/// </summary>
public sealed class TensorData : WorkloadData
{
    private readonly Tensor _inputs, _targets;

    /// <param name="inputs">Samples along dimension 0, any shape and dtype.</param>
    /// <param name="targets">Targets along dimension 0, as many as inputs.</param>
    /// <param name="device">Where batches are made: the tensors are copied there, or shared where they already are (the caller keeps and disposes its own).</param>
    public TensorData(Tensor inputs, Tensor targets, Device device)
    {
        if (inputs.dim() == 0 || targets.dim() == 0 || inputs.shape[0] != targets.shape[0])
            throw new ArgumentException($"inputs and targets must have the same number of samples along dimension 0, had shapes [{string.Join(",", inputs.shape)}] and [{string.Join(",", targets.shape)}]");
        if (inputs.shape[0] > int.MaxValue) throw new ArgumentException($"at most {int.MaxValue} samples, had {inputs.shape[0]}");
        // detach() makes a tensor of our own that shares the caller's storage (no copy on the same device).
        _inputs = inputs.detach().to(device).DetachFromDisposeScope();
        _targets = targets.detach().to(device).DetachFromDisposeScope();
        Count = (int)inputs.shape[0];
    }

    /// <inheritdoc/>
    public override int Count { get; }

    /// <inheritdoc/>
    public override Batch Get(ReadOnlySpan<int> indices)
    {
        var positions = new long[indices.Length];
        for (int i = 0; i < positions.Length; i++) positions[i] = indices[i];
        using var index = tensor(positions, ScalarType.Int64).to(_inputs.device);
        return new Batch(_inputs.index_select(0, index), _targets.index_select(0, index));
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _inputs.Dispose();
        _targets.Dispose();
    }
}
