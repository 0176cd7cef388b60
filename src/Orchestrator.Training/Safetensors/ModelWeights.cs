using System.Runtime.InteropServices;
using Orchestrator.Core.IO;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Orchestrator.Training.Safetensors;

/// <summary>Moves a module's parameters and buffers (its state_dict, PyTorch names) to and from safetensors.</summary>
public static class ModelWeights
{
    public static IReadOnlyList<SafetensorsTensor> Export(Module module)
    {
        var tensors = new List<SafetensorsTensor>();
        foreach (var (name, value) in module.state_dict())
        {
            using var scope = NewDisposeScope();
            var cpuValue = value.detach().cpu().contiguous();
            if (cpuValue.dtype != ScalarType.Float32)
                throw new NotSupportedException($"{name}: only float32 weights are exported, found {cpuValue.dtype}");
            var values = cpuValue.data<float>().ToArray();
            tensors.Add(new SafetensorsTensor(name, "F32", cpuValue.shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));
        }
        return tensors;
    }

    /// <summary>Writes the weights atomically (temp file, fsync, rename).</summary>
    public static void Save(Module module, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var tensors = Export(module);
        AtomicFile.Write(path, stream => SafetensorsCodec.Write(stream, tensors, metadata));
    }

    /// <summary>Copies every tensor into the module; names, shapes and dtypes must match exactly.</summary>
    public static void Import(Module module, SafetensorsContent content)
    {
        var state = module.state_dict();
        var missing = state.Keys.Where(k => content.Tensors.All(t => t.Name != k)).ToList();
        var extra = content.Tensors.Where(t => !state.ContainsKey(t.Name)).Select(t => t.Name).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new InvalidDataException($"weights do not fit the model: missing [{string.Join(", ", missing)}], unexpected [{string.Join(", ", extra)}]");
        using var noGrad = no_grad();
        foreach (var t in content.Tensors)
        {
            var target = state[t.Name];
            if (t.Dtype != "F32") throw new InvalidDataException($"{t.Name}: dtype {t.Dtype}, expected F32");
            if (!t.Shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"{t.Name}: shape [{string.Join(",", t.Shape)}], model has [{string.Join(",", target.shape)}]");
            using var scope = NewDisposeScope();
            var values = MemoryMarshal.Cast<byte, float>(t.Data.Span).ToArray();
            target.copy_(tensor(values, t.Shape).to(target.device));
        }
    }

    /// <summary>Reads the tensor as float64 values, whatever its float dtype.</summary>
    public static double[] ToDoubles(SafetensorsTensor t) => t.Dtype switch
    {
        "F32" => Array.ConvertAll(MemoryMarshal.Cast<byte, float>(t.Data.Span).ToArray(), v => (double)v),
        "F64" => MemoryMarshal.Cast<byte, double>(t.Data.Span).ToArray(),
        "F16" => Array.ConvertAll(MemoryMarshal.Cast<byte, Half>(t.Data.Span).ToArray(), v => (double)v),
        "BF16" => Array.ConvertAll(MemoryMarshal.Cast<byte, ushort>(t.Data.Span).ToArray(), v => (double)BitConverter.Int32BitsToSingle(v << 16)),
        _ => throw new NotSupportedException($"{t.Name}: dtype {t.Dtype} is not a float type"),
    };
}
