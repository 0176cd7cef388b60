using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Orchestrator.Core.Settings;

namespace Orchestrator.Cluster.Membership;

/// <summary>
/// The cluster's downing provider (<c>akka.cluster.downing-provider-class</c>): <see cref="DowningActor"/> on every
/// node, deciding with <see cref="DowningPolicy"/>. Singletons and shards of a downed member move only after
/// the removal margin, <c>orchestrator.membership.stable-after</c>, so that a coordinator that gives way has
/// stopped its job manager before a standby starts one.
/// </summary>
public sealed class CoordinatorFirstDowningProvider(ActorSystem system, Akka.Cluster.Cluster cluster) : IDowningProvider
{
    private readonly TimeSpan _stableAfter = MembershipSettings.Create(system.Settings.Config.GetConfig("orchestrator.membership")).StableAfter;

    public TimeSpan DownRemovalMargin => _stableAfter;

    public Props DowningActorProps => DowningActor.Props(cluster, _stableAfter);
}

/// <summary>
/// Once a second: the membership as this node sees it (the gossip's unreachability, and its own failure
/// detector's), through <see cref="DowningPolicy"/>, and each member the policy names marked down once.
/// </summary>
public sealed class DowningActor : ReceiveActor, IWithTimers
{
    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    private readonly Akka.Cluster.Cluster _cluster;
    private readonly DowningPolicy _policy;
    private readonly HashSet<UniqueAddress> _downed = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(Akka.Cluster.Cluster cluster, TimeSpan stableAfter) =>
        Akka.Actor.Props.Create(() => new DowningActor(cluster, stableAfter));

    public DowningActor(Akka.Cluster.Cluster cluster, TimeSpan stableAfter)
    {
        _cluster = cluster;
        _policy = new DowningPolicy(stableAfter);
        Receive<Tick>(_ => Decide());
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromSeconds(1));

    private void Decide()
    {
        var view = View(_cluster);
        if (view is null) return;
        // A monotonic clock: a step of the wall clock must not down anyone early or late.
        var decision = _policy.Observe(TimeSpan.FromMilliseconds(Environment.TickCount64), view);
        foreach (var node in decision.Down)
        {
            if (!_downed.Add(node)) continue;
            _log.Warning("marking {0} down: {1} (members: {2})", node.Address, decision.Reason, Describe(view));
            _cluster.Down(node.Address);
        }
    }

    /// <summary>The membership as this node sees it; null while it is not a member itself.</summary>
    public static MembershipView? View(Akka.Cluster.Cluster cluster)
    {
        var state = cluster.State;
        var live = state.Members.Where(m => m.Status is not (MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed))
            .OrderBy(m => m, Member.AgeOrdering).ToList();
        var self = live.FindIndex(m => m.UniqueAddress.Equals(cluster.SelfUniqueAddress));
        if (self < 0) return null;
        var others = live.Select((m, age) => (m, age)).Where(x => x.age != self)
            .Select(x => new MemberView(x.m.UniqueAddress, x.m.HasRole(CoordinatorWatch.CoordinatorRole), x.age,
                state.Unreachable.Contains(x.m), !Reaches(cluster, state, x.m)))
            .ToList();
        return new MembershipView(cluster.SelfUniqueAddress, cluster.SelfRoles.Contains(CoordinatorWatch.CoordinatorRole), self, others);
    }

    /// <summary>
    /// Whether this node itself hears <paramref name="member"/>: its own failure detector where it watches the member
    /// (every member in a cluster of up to 10 nodes), else the gossip's view.
    /// </summary>
    public static bool Reaches(Akka.Cluster.Cluster cluster, ClusterEvent.CurrentClusterState state, Member member) =>
        cluster.FailureDetector.IsMonitoring(member.Address)
            ? cluster.FailureDetector.IsAvailable(member.Address)
            : !state.Unreachable.Contains(member);

    private static string Describe(MembershipView view) =>
        string.Join(", ", view.Others.Select(o =>
            $"{o.Node.Address}{(o.Coordinator ? " [coordinator]" : "")}{(o.Unreachable ? " unreachable" : "")}{(o.CutOffFromSelf ? " not heard here" : "")}"));
}
