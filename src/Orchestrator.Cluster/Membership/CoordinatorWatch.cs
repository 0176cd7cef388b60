using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace Orchestrator.Cluster.Membership;

/// <summary>
/// How long this node has been a member without a reachable coordinator. The clock starts when the
/// node is Up and sees no reachable, Up coordinator-role member, and stops as soon as it sees one.
/// A node that is not yet a member (still joining) is waiting for its seeds, not orphaned.
/// </summary>
public sealed class CoordinatorAbsence(TimeSpan limit)
{
    private TimeSpan? _since;

    public TimeSpan Limit { get; } = limit;

    /// <summary>Records one observation at <paramref name="now"/> on a monotonic clock; true once the coordinator has been missing for <see cref="Limit"/>.</summary>
    public bool Observe(TimeSpan now, bool selfUp, bool coordinatorReachable)
    {
        if (!selfUp || coordinatorReachable)
        {
            _since = null;
            return false;
        }
        _since ??= now;
        return now - _since.Value >= Limit;
    }
}

/// <summary>
/// On nodes without the coordinator role: when the node has been in a cluster with no reachable
/// coordinator for <c>orchestrator.membership.rejoin-without-coordinator-after</c>, it ends its actor
/// system with <see cref="RejoinReason"/>, and the node host starts a fresh one that joins through the
/// seed nodes again. The case it is for: a restarted coordinator that is the first seed can join
/// itself (Akka does so when its other seeds' answers are lost while they drop its old incarnation),
/// leaving its workers in a cluster of their own that no coordinator will ever join (nobody marks the old incarnation
/// down: workers never decide, <see cref="DowningPolicy"/>); and a coordinator that a worker no longer hears while the
/// coordinator still hears it (a one-way break), which the coordinator's downing rules leave alone.
/// </summary>
public sealed class CoordinatorWatch : ReceiveActor, IWithTimers
{
    public const string Name = "coordinator-watch";
    public const string CoordinatorRole = "coordinator";

    /// <summary>The coordinated-shutdown reason that tells the node host to start over rather than exit.</summary>
    public sealed class RejoinReason : CoordinatedShutdown.Reason
    {
        public static readonly RejoinReason Instance = new();
        private RejoinReason() { }
        public override int ExitCode => 0;   // never an exit: the host starts over
        public override string ToString() => "no reachable coordinator; joining again through the seed nodes";
    }

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CoordinatorAbsence _absence;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(TimeSpan limit) => Akka.Actor.Props.Create(() => new CoordinatorWatch(limit));

    public CoordinatorWatch(TimeSpan limit)
    {
        _absence = new CoordinatorAbsence(limit);
        Receive<Tick>(_ => Check());
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromSeconds(1));

    private void Check()
    {
        var state = _cluster.State;
        var selfUp = state.Members.Any(m => m.UniqueAddress.Equals(_cluster.SelfUniqueAddress) && m.Status == MemberStatus.Up);
        // Up only: a coordinator still Joining (a new incarnation on its way in) is not there yet, and one Leaving is going.
        // Reachable by the gossip (which holds this node's own observations too). That is what brings workers back after a
        // coordinator restarted into a cluster of its own: nobody marks the old incarnation down (workers never decide), it
        // stays an unreachable member, and a process listening on its address must not count as hearing it.
        var coordinatorReachable = state.Members.Any(m => m.HasRole(CoordinatorRole) && m.Status == MemberStatus.Up && !state.Unreachable.Contains(m));
        // A monotonic clock: a step of the wall clock must not start or delay a rejoin.
        if (!_absence.Observe(TimeSpan.FromMilliseconds(Environment.TickCount64), selfUp, coordinatorReachable)) return;

        Timers.CancelAll();   // once is enough: the actor system is ending
        _log.Warning("no reachable coordinator in this cluster for {0} s (members: {1}); leaving it to join again through the seed nodes",
            _absence.Limit.TotalSeconds, string.Join(", ", state.Members.Select(m => $"{m.Address} [{string.Join(",", m.Roles)}] {m.Status}")));
        CoordinatedShutdown.Get(Context.System).Run(RejoinReason.Instance);
    }
}
