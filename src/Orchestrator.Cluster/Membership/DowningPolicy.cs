using Akka.Cluster;

namespace Orchestrator.Cluster.Membership;

/// <summary>Another member as one node sees it at one moment.</summary>
/// <param name="Age">The member's rank in age order, 0 for the oldest (Akka's up-number order, the same on every node).</param>
/// <param name="Unreachable">Some member (this node or another) has marked it unreachable: the cluster's gossip says so.</param>
/// <param name="CutOffFromSelf">This node's own failure detector gets no heartbeats from it (where it does not watch the member, the gossip's word).</param>
public sealed record MemberView(UniqueAddress Node, bool Coordinator, int Age, bool Unreachable, bool CutOffFromSelf);

/// <summary>The cluster from one node: itself and every other member that is not yet down, exiting or removed.</summary>
public sealed record MembershipView(UniqueAddress Self, bool SelfIsCoordinator, int SelfAge, IReadOnlyList<MemberView> Others);

/// <summary>Members to mark down now, and why (for the log).</summary>
public sealed record DowningDecision(IReadOnlyList<UniqueAddress> Down, string Reason)
{
    public static readonly DowningDecision None = new([], "");
}

/// <summary>
/// Coordinator-first downing: which unreachable members to mark down, decided so that losing workers never
/// costs the coordinator, which holds the job queue. Akka's split-brain resolver treats every member alike:
/// keep-majority downed the coordinator when most workers were lost at once, and its "indirectly connected"
/// rule downed it whenever one worker's view of it was stale (a restart, a frozen process resumed), whatever
/// the strategy. The rules, fed once a second by <see cref="DowningActor"/>:
/// <list type="number">
/// <item>Workers never decide. Only the oldest coordinator a node itself reaches decides, on its side of a
/// partition; so each side has at most one decider.</item>
/// <item>The decider marks down every member the cluster has seen unreachable for <c>stable-after</c> without a
/// break: workers (they are replaceable; their jobs recover from checkpoints) and standby coordinators alike.
/// It never acts on its own unreachability as reported by a worker: that worker cannot reach the coordinator,
/// and it is the worker that leaves (<see cref="CoordinatorWatch"/>) or is marked down when it stops answering.</item>
/// <item>Between coordinators, keep-oldest: the oldest coordinator that reaches no other member at all for
/// <c>stable-after</c>, while a standby coordinator exists, marks itself down so that the standby takes over
/// (the singleton moves only after the removal margin, so that there are never two job managers). A standby
/// whose oldest coordinator is cut off marks that one down when it is alone on its side, and otherwise marks
/// itself down (the side without the oldest coordinator gives way).</item>
/// <item>A coordinator without a standby never marks itself down: nothing could take over its queue, and a
/// cluster whose every worker died still has its jobs. Workers cut off from it leave after
/// <c>rejoin-without-coordinator-after</c> and join again through the seeds once the network lets them.</item>
/// </list>
/// </summary>
public sealed class DowningPolicy(TimeSpan stableAfter)
{
    private readonly Dictionary<UniqueAddress, TimeSpan> _unreachableSince = [];

    public TimeSpan StableAfter { get; } = stableAfter;

    /// <summary>One observation at <paramref name="now"/> on a monotonic clock.</summary>
    public DowningDecision Observe(TimeSpan now, MembershipView view)
    {
        foreach (var gone in _unreachableSince.Keys.Where(k => view.Others.All(o => !o.Node.Equals(k))).ToList())
            _unreachableSince.Remove(gone);
        foreach (var other in view.Others)
            if (other.Unreachable) _unreachableSince.TryAdd(other.Node, now);
            else _unreachableSince.Remove(other.Node);

        if (!view.SelfIsCoordinator) return DowningDecision.None;
        // An older coordinator this node reaches decides, not this one.
        if (view.Others.Any(o => o.Coordinator && o.Age < view.SelfAge && !o.CutOffFromSelf)) return DowningDecision.None;

        bool Stable(MemberView m) => _unreachableSince.TryGetValue(m.Node, out var since) && now - since >= StableAfter;
        var stable = view.Others.Where(Stable).ToList();

        var oldest = view.Others.Where(o => o.Coordinator && o.Age < view.SelfAge).MinBy(o => o.Age);
        if (oldest is not null)
        {
            // A standby coordinator whose older coordinators are all cut off from it.
            if (!Stable(oldest)) return DowningDecision.None;
            return view.Others.All(o => o == oldest || !o.Unreachable)
                ? new DowningDecision([oldest.Node], $"the oldest coordinator {oldest.Node.Address} is cut off from every other member; this standby coordinator takes over")
                : new DowningDecision([view.Self], $"the oldest coordinator {oldest.Node.Address} is cut off from this side together with other members; the side without it gives way");
        }

        // This node is the oldest coordinator.
        var alone = view.Others.Count > 0 && view.Others.All(o => o.CutOffFromSelf && Stable(o));
        var standby = view.Others.FirstOrDefault(o => o.Coordinator);
        if (alone && standby is not null)
            return new DowningDecision([view.Self], $"this coordinator has reached no other member for {StableAfter.TotalSeconds} s; standby coordinator {standby.Node.Address} takes over");
        return stable.Count == 0
            ? DowningDecision.None
            : new DowningDecision(stable.Select(m => m.Node).ToList(), $"unreachable for {StableAfter.TotalSeconds} s");
    }
}
