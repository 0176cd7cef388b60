using Akka.Actor;
using Akka.Cluster;

namespace Orchestrator.Cluster.Checkpoint;

/// <summary>
/// Finds the checkpoint actor: this node's own when it has the <c>checkpoint</c> role (the usual
/// <c>--roles coordinator,checkpoint</c>), else the oldest reachable member with that role.
/// </summary>
public static class CheckpointStoreLocator
{
    public const string Role = "checkpoint";

    /// <summary>The store's full actor path, or null when no member has the role.</summary>
    public static string? Path(ActorSystem system)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        if (cluster.SelfRoles.Contains(Role)) return $"{cluster.SelfAddress}/user/{CheckpointStore.Name}";
        var state = cluster.State;
        var member = state.Members
            .Where(m => m.Status == MemberStatus.Up && m.HasRole(Role) && !state.Unreachable.Contains(m))
            .OrderBy(m => m, Member.AgeOrdering)
            .FirstOrDefault();
        return member is null ? null : $"{member.Address}/user/{CheckpointStore.Name}";
    }

    public static IActorRef? Resolve(ActorSystem system) =>
        Path(system) is { } path ? ((ExtendedActorSystem)system).Provider.ResolveActorRef(path) : null;
}
