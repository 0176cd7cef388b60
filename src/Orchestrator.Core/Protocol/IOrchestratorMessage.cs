namespace Orchestrator.Core.Protocol;

/// <summary>
/// Marker for every message that crosses processes. The cluster's serializer is bound to this
/// interface, so a message type that does not implement it cannot go over the wire.
/// </summary>
public interface IOrchestratorMessage;
