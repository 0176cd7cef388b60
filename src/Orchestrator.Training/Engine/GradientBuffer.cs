using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using DeviceType = TorchSharp.DeviceType;

namespace Orchestrator.Training.Engine;

/// <summary>
/// A worker's gradients as one flat float32 buffer: the local replicas' gradients summed into it
/// (copied once in), reduced across workers in place, then copied once out into every local replica.
/// The parameters lie in reverse order of registration, the order backward completes them in, so the
/// buffer fills from its start while backward runs and its first buckets can be reduced early
/// (<see cref="OverlappedReduction"/>); every path uses this one layout. The buffer is allocated once
/// per run. CPU tensors are read and written through their memory (<c>Tensor.bytes</c> is a view);
/// other devices go through one host copy.
/// </summary>
public sealed class GradientBuffer
{
    private readonly float[] _flat;
    private readonly float[] _scratch;   // one parameter's gradient from a second replica, before it is added
    private readonly int[] _offsets;     // by position in the layout: where that parameter starts (and, last, the total)
    private readonly int[] _parameter;   // by position in the layout: the parameter's index in registration order

    public GradientBuffer(Module model)
    {
        var sizes = model.parameters().Select(p => p.numel()).ToArray();
        long total = sizes.Sum();
        if (total > Array.MaxLength) throw new ArgumentException($"model has {total} parameters, more than one buffer holds");
        _flat = new float[total];
        _scratch = new float[sizes.Length == 0 ? 0 : sizes.Max()];
        _parameter = Enumerable.Range(0, sizes.Length).Reverse().ToArray();
        _offsets = new int[sizes.Length + 1];
        for (int i = 0; i < sizes.Length; i++) _offsets[i + 1] = _offsets[i] + (int)sizes[_parameter[i]];
    }

    public Memory<float> Values => _flat;

    /// <summary>How many parameters the layout holds.</summary>
    public int Count => _parameter.Length;

    /// <summary>The registration index of the parameter at <paramref name="position"/> in the layout.</summary>
    public int ParameterAt(int position) => _parameter[position];

    /// <summary>Where the parameter at <paramref name="position"/> starts in the buffer (<see cref="Count"/>: the buffer's length).</summary>
    public int OffsetOf(int position) => _offsets[position];

    /// <summary>Sets the buffer to the sum of the replicas' gradients, added left to right.</summary>
    public void Gather(IReadOnlyList<Replica> replicas) => Gather(replicas, 0, Count);

    /// <summary>Sets positions [<paramref name="from"/>, <paramref name="to"/>) of the layout to the sum of the replicas' gradients, added left to right.</summary>
    public void Gather(IReadOnlyList<Replica> replicas, int from, int to)
    {
        for (int r = 0; r < replicas.Count; r++) Accumulate(replicas[r], first: r == 0, from, to);
    }

    /// <summary>Copies (<paramref name="first"/>) or adds one replica's gradients into the buffer.</summary>
    public void Accumulate(Replica replica, bool first) => Accumulate(replica, first, 0, Count);

    private void Accumulate(Replica replica, bool first, int from, int to)
    {
        var parameters = replica.Parameters;
        for (int position = from; position < to; position++)
        {
            var target = _flat.AsSpan(_offsets[position], _offsets[position + 1] - _offsets[position]);
            using var grad = parameters[_parameter[position]].grad ?? throw new InvalidOperationException("a parameter has no gradient");
            if (first) Read(grad, target); else Add(grad, target);
        }
    }

    /// <summary>Writes the buffer into every replica's gradients.</summary>
    public void Scatter(IReadOnlyList<Replica> replicas)
    {
        foreach (var replica in replicas)
        {
            var parameters = replica.Parameters;
            for (int position = 0; position < Count; position++)
            {
                using var grad = parameters[_parameter[position]].grad!;
                Write(_flat.AsSpan(_offsets[position], _offsets[position + 1] - _offsets[position]), grad);
            }
        }
    }

    /// <summary>A copy of one parameter's gradient (registration index), or null when it has none.</summary>
    internal static float[]? Snapshot(TorchSharp.Modules.Parameter parameter)
    {
        using var grad = parameter.grad;
        if (grad is null) return null;
        var values = new float[grad.numel()];
        Read(grad, values);
        return values;
    }

    /// <summary>SHA-256 of the model's parameters (registration order, float32 bytes): replicas are equal exactly when their digests are.</summary>
    public static string Digest(Module model)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in model.parameters())
        {
            var values = new float[p.numel()];
            using (var detached = p.detach()) Read(detached, values);
            hash.AppendData(MemoryMarshal.AsBytes(values.AsSpan()));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void Read(Tensor t, Span<float> target)
    {
        using var host = OnHost(t);
        // Tensor.bytes is a view of a CPU tensor's memory: a memcpy, where the element accessor took 50x longer.
        MemoryMarshal.Cast<byte, float>(host.bytes)[..target.Length].CopyTo(target);
    }

    private void Add(Tensor t, Span<float> target)
    {
        var source = _scratch.AsSpan(0, target.Length);
        Read(t, source);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var s = MemoryMarshal.Cast<float, Vector<float>>(source);
            var d = MemoryMarshal.Cast<float, Vector<float>>(target);
            for (int v = 0; v < d.Length; v++) d[v] += s[v];
            i = d.Length * Vector<float>.Count;
        }
        for (; i < target.Length; i++) target[i] += source[i];
    }

    private static void Write(ReadOnlySpan<float> source, Tensor t)
    {
        if (t.device_type == DeviceType.CPU && t.is_contiguous())
        {
            source.CopyTo(MemoryMarshal.Cast<byte, float>(t.bytes));
            return;
        }
        using var host = tensor(source.ToArray(), t.shape, ScalarType.Float32);
        t.copy_(host);
    }

    /// <summary>The tensor itself when it is a contiguous float32 CPU tensor, else a host copy (the caller disposes either).</summary>
    private static Tensor OnHost(Tensor t)
    {
        if (t.dtype != ScalarType.Float32) throw new InvalidOperationException($"gradients must be float32, found {t.dtype}");
        return t.device_type == DeviceType.CPU ? t.contiguous() : t.cpu().contiguous();
    }
}
