using System.Runtime.InteropServices;
using Orchestrator.Training.Safetensors;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Orchestrator.Training.Checkpoints;

/// <summary>
/// An optimizer's per-parameter state (SGD's momentum buffers, Adam's moments and step counts) and
/// libtorch's CPU generator, as safetensors tensors named after the parameters (<c>momentum_buffer.fc1.weight</c>),
/// so that a resumed run continues bit for bit. TorchSharp keeps the state in parameter order, the
/// order of <see cref="Module.named_parameters"/>.
/// </summary>
public static class OptimizerState
{
    private const string RngName = "rng_state.cpu";

    public static IReadOnlyList<SafetensorsTensor> Export(optim.Optimizer optimizer, Module model)
    {
        var names = model.named_parameters().Select(p => p.name).ToList();
        var states = Helper(optimizer).state_dict().State;
        if (states.Count != names.Count)
            throw new InvalidOperationException($"the optimizer holds state for {states.Count} parameters, the model has {names.Count}");
        var tensors = new List<SafetensorsTensor>();
        for (int i = 0; i < names.Count; i++)
        {
            switch (states[i])
            {
                case SGD.State sgd:
                    if (sgd.momentum_buffer is { } buffer) tensors.Add(Float32("momentum_buffer." + names[i], buffer));
                    break;
                case Adam.State adam:
                    tensors.Add(new SafetensorsTensor("step." + names[i], "I64", [], BitConverter.GetBytes(adam.step)));
                    if (adam.exp_avg is { } avg) tensors.Add(Float32("exp_avg." + names[i], avg));
                    if (adam.exp_avg_sq is { } sq) tensors.Add(Float32("exp_avg_sq." + names[i], sq));
                    if (adam.max_exp_avg_sq is { } max) tensors.Add(Float32("max_exp_avg_sq." + names[i], max));
                    break;
                default:
                    throw new NotSupportedException($"no checkpoint support for optimizer state {states[i].GetType().Name}");
            }
        }
        using (var rng = random.get_rng_state())
            tensors.Add(new SafetensorsTensor(RngName, "U8", rng.shape, rng.data<byte>().ToArray()));
        return tensors;
    }

    /// <summary>Restores what <see cref="Export"/> wrote into a freshly built optimizer of the same kind over the same model.</summary>
    public static void Import(optim.Optimizer optimizer, Module model, SafetensorsContent content)
    {
        var parameters = model.named_parameters().ToList();
        var states = Helper(optimizer).state_dict().State;
        var byName = content.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < parameters.Count; i++)
        {
            var (name, parameter) = parameters[i];
            switch (states[i])
            {
                case SGD.State sgd:
                    sgd.momentum_buffer = Replace(sgd.momentum_buffer, Take("momentum_buffer." + name, parameter, required: false));
                    break;
                case Adam.State adam:
                    adam.step = BitConverter.ToInt64(Need("step." + name).Data.Span);
                    adam.exp_avg = Replace(adam.exp_avg, Take("exp_avg." + name, parameter, required: true))!;
                    adam.exp_avg_sq = Replace(adam.exp_avg_sq, Take("exp_avg_sq." + name, parameter, required: true))!;
                    adam.max_exp_avg_sq = Replace(adam.max_exp_avg_sq, Take("max_exp_avg_sq." + name, parameter, required: false));
                    break;
                default:
                    throw new NotSupportedException($"no checkpoint support for optimizer state {states[i].GetType().Name}");
            }
        }
        if (byName.TryGetValue(RngName, out var rng))
        {
            used.Add(RngName);
            using var state = tensor(rng.Data.ToArray(), rng.Shape, ScalarType.Byte);
            random.set_rng_state(state);
        }
        var extra = byName.Keys.Where(k => !used.Contains(k)).ToList();
        if (extra.Count > 0)
            throw new InvalidDataException($"optimizer state does not fit the job's optimizer: unexpected [{string.Join(", ", extra.Take(5))}]");

        SafetensorsTensor Need(string key)
        {
            if (!byName.TryGetValue(key, out var t)) throw new InvalidDataException($"optimizer state lacks '{key}'");
            used.Add(key);
            return t;
        }

        Tensor? Take(string key, Parameter like, bool required)
        {
            if (!byName.ContainsKey(key) && !required) return null;
            var t = Need(key);
            if (t.Dtype != "F32" || !t.Shape.SequenceEqual(like.shape))
                throw new InvalidDataException($"optimizer state '{key}': {t.Dtype} [{string.Join(",", t.Shape)}], expected F32 [{string.Join(",", like.shape)}]");
            var values = MemoryMarshal.Cast<byte, float>(t.Data.Span).ToArray();
            var cpu = tensor(values, t.Shape);
            if (like.device.type == TorchSharp.DeviceType.CPU) return cpu;
            using (cpu) return cpu.to(like.device);
        }
    }

    /// <summary>The restored tensor in place of the old one (disposed: it holds native memory); the old one when nothing was restored.</summary>
    private static Tensor? Replace(Tensor? old, Tensor? restored)
    {
        if (restored is null) return old;
        old?.Dispose();
        return restored;
    }

    private static OptimizerHelper Helper(optim.Optimizer optimizer) => optimizer as OptimizerHelper
        ?? throw new NotSupportedException($"no checkpoint support for optimizer {optimizer.GetType().Name}");

    private static SafetensorsTensor Float32(string name, Tensor value)
    {
        using var scope = NewDisposeScope();
        var cpu = value.detach().cpu().contiguous();
        if (cpu.dtype != ScalarType.Float32) throw new NotSupportedException($"{name}: only float32 state is saved, found {cpu.dtype}");
        return new SafetensorsTensor(name, "F32", cpu.shape, MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()).ToArray());
    }
}
