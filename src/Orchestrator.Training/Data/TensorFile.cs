using System.Runtime.InteropServices;
using Orchestrator.Training.Safetensors;
using static TorchSharp.torch;

namespace Orchestrator.Training.Data;

/// <summary>
/// Safetensors files as CPU tensors, through the strict codec: the file is validated whole before a
/// tensor is made. The `tensors` dataset and workloads (<c>WorkloadContext.ReadTensors</c>) read data this way.
/// </summary>
public static class TensorFile
{
    /// <summary>The dtypes a data file may hold.</summary>
    public static readonly string[] DataDtypes = ["F32", "F16", "I64", "U8"];

    /// <exception cref="SafetensorsFormatException">the file is damaged or holds another dtype; nothing is returned.</exception>
    public static IReadOnlyDictionary<string, Tensor> Read(string path)
    {
        var content = SafetensorsCodec.ReadFile(path);
        foreach (var t in content.Tensors)
            if (Array.IndexOf(DataDtypes, t.Dtype) < 0)
                throw new SafetensorsFormatException($"{path}: tensor '{t.Name}' is {t.Dtype}; data files hold {string.Join(", ", DataDtypes)}");
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var t in content.Tensors) result[t.Name] = ToTensor(t);
        return result;
    }

    private static Tensor ToTensor(SafetensorsTensor t)
    {
        var bytes = t.Data.Span;
        return t.Dtype switch
        {
            "F32" => tensor(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), t.Shape),
            "F16" => tensor(MemoryMarshal.Cast<byte, Half>(bytes).ToArray(), t.Shape),
            "I64" => tensor(MemoryMarshal.Cast<byte, long>(bytes).ToArray(), t.Shape),
            "U8" => tensor(bytes.ToArray(), t.Shape),
            _ => throw new SafetensorsFormatException($"tensor '{t.Name}': dtype {t.Dtype} is not a data dtype"),
        };
    }
}
