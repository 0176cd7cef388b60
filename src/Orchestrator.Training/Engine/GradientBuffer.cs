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
/// The buffer is allocated once per run. CPU tensors are read and written through their memory
/// (<c>Tensor.bytes</c> is a view); other devices go through one host copy.
/// </summary>
public sealed class GradientBuffer
{
    private readonly float[] _flat;
    private readonly float[] _scratch;   // one parameter's gradient from a second replica, before it is added

    public GradientBuffer(Module model)
    {
        long total = model.parameters().Sum(p => p.numel());
        if (total > Array.MaxLength) throw new ArgumentException($"model has {total} parameters, more than one buffer holds");
        _flat = new float[total];
        _scratch = new float[model.parameters().Max(p => p.numel())];
    }

    public Memory<float> Values => _flat;

    /// <summary>Sets the buffer to the sum of the replicas' gradients (parameters in registration order), added left to right.</summary>
    public void Gather(IReadOnlyList<Replica> replicas)
    {
        for (int r = 0; r < replicas.Count; r++) Accumulate(replicas[r], first: r == 0);
    }

    /// <summary>Copies (<paramref name="first"/>) or adds one replica's gradients into the buffer.</summary>
    public void Accumulate(Replica replica, bool first)
    {
        int offset = 0;
        foreach (var p in replica.Model.parameters())
        {
            int n = (int)p.numel();
            var target = _flat.AsSpan(offset, n);
            using var grad = p.grad ?? throw new InvalidOperationException("a parameter has no gradient");
            if (first) Read(grad, target); else Add(grad, target);
            offset += n;
        }
    }

    /// <summary>Writes the buffer into every replica's gradients.</summary>
    public void Scatter(IReadOnlyList<Replica> replicas)
    {
        foreach (var replica in replicas)
        {
            int offset = 0;
            foreach (var p in replica.Model.parameters())
            {
                int n = (int)p.numel();
                using var grad = p.grad!;
                Write(_flat.AsSpan(offset, n), grad);
                offset += n;
            }
        }
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
