using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>Worker membership: the coordinator's registry asks each worker node for its inventory.</summary>
public static class ClusterProtocol
{
    /// <summary>Registry → worker agent: "tell me your devices". Sent when a worker node comes up, and again until answered.</summary>
    [MessagePackObject]
    public sealed record RequestInventory : IOrchestratorMessage
    {
        public static readonly RequestInventory Instance = new();
    }

    /// <summary>One local device as the worker sees it. Memory is null where it is not known (CPU).</summary>
    [MessagePackObject]
    public sealed record DeviceInfo([property: Key(0)] string Type, [property: Key(1)] int Index, [property: Key(2)] long? MemoryBytes);

    /// <summary>
    /// Worker agent → registry, in answer to <see cref="RequestInventory"/> and whenever it finishes a
    /// job: the node's address, its devices, and the job it is running (null when idle).
    /// </summary>
    [MessagePackObject]
    public sealed record WorkerInventory(
        [property: Key(0)] string Node,
        [property: Key(1)] IReadOnlyList<DeviceInfo> Devices,
        [property: Key(2)] string? RunningJob) : IOrchestratorMessage;
}
