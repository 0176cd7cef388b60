using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.ClusterProtocol;
using static TorchSharp.torch;

namespace Orchestrator.Cluster.Worker;

/// <summary>The devices a worker node offers: its GPUs, or <c>cpu-devices</c> CPU slots where there are none (or the CPU is configured).</summary>
public static class DeviceInventory
{
    public static IReadOnlyList<DeviceInfo> Detect(WorkerSettings settings)
    {
        bool useCuda = settings.Device switch
        {
            "cpu" => false,
            "cuda" => cuda.is_available() ? true : throw new InvalidOperationException(
                "orchestrator.worker.device = cuda, but CUDA is not available on this node (a build with -p:TorchBackend=cuda and an NVIDIA driver are needed)"),
            _ => cuda.is_available(),
        };
        return useCuda
            ? Enumerable.Range(0, cuda.device_count()).Select(i => new DeviceInfo("cuda", i, null)).ToArray()
            : Enumerable.Range(0, settings.CpuDevices).Select(i => new DeviceInfo("cpu", i, null)).ToArray();
    }
}
