using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Training.Devices;

/// <summary>
/// Turns the configured device ("auto", "cpu", "cuda", "cuda:N") into a TorchSharp device.
/// "auto" takes CUDA when this build's libtorch has it and a GPU is present, else the CPU, so no
/// code path is specific to one backend.
/// </summary>
public static class DeviceSelector
{
    public static Device Resolve(string configured)
    {
        var spec = configured.Trim().ToLowerInvariant();
        if (spec is "auto" or "") return cuda.is_available() ? CUDA : CPU;
        if (spec == "cpu") return CPU;
        if (spec == "cuda" || spec.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException($"device '{configured}' requested but CUDA is not available here " +
                    "(a build with -p:TorchBackend=cuda and an NVIDIA driver are needed); use 'cpu' or 'auto'");
            int index = spec == "cuda" ? 0 : ParseIndex(configured, spec[5..]);
            if (index >= cuda.device_count())
                throw new ArgumentException($"device '{configured}': only {cuda.device_count()} CUDA device(s) present");
            return new Device(DeviceType.CUDA, index);
        }
        throw new ArgumentException($"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', was '{configured}'");
    }

    /// <summary>The local devices a worker offers: every GPU, or the CPU when there is none.</summary>
    public static IReadOnlyList<Device> LocalDevices() =>
        cuda.is_available() ? Enumerable.Range(0, cuda.device_count()).Select(i => new Device(DeviceType.CUDA, i)).ToArray() : [CPU];

    private static int ParseIndex(string configured, string text) =>
        int.TryParse(text, out var i) && i >= 0 ? i : throw new ArgumentException($"device '{configured}': bad CUDA index '{text}'");
}
