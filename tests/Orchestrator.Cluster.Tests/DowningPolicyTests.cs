using Akka.Actor;
using Akka.Cluster;
using Orchestrator.Cluster.Membership;

namespace Orchestrator.Cluster.Tests;

/// <summary>Which members coordinator-first downing marks down, for the losses an operator's bad day brings.</summary>
public sealed class DowningPolicyTests
{
    private static readonly TimeSpan T0 = TimeSpan.FromHours(3);   // a monotonic clock's reading
    private static readonly TimeSpan Stable = TimeSpan.FromSeconds(7);

    private static UniqueAddress Node(int port) => new(new Address("akka.ssl.tcp", "orchestrator", "127.0.0.1", port), port);

    private static readonly UniqueAddress Coordinator = Node(2551), Standby = Node(2552);
    private static readonly UniqueAddress[] Workers = [Node(2601), Node(2602), Node(2603), Node(2604)];

    /// <summary>A worker's view or a coordinator's: everyone else, with the ages in the order given (the coordinator first).</summary>
    private static MembershipView View(UniqueAddress self, params (UniqueAddress Node, bool Unreachable, bool Cut)[] others)
    {
        var all = new[] { Coordinator, Standby }.Concat(Workers).ToList();
        return new MembershipView(self, self == Coordinator || self == Standby, all.IndexOf(self),
            others.Select(o => new MemberView(o.Node, o.Node == Coordinator || o.Node == Standby, all.IndexOf(o.Node), o.Unreachable, o.Cut)).ToList());
    }

    private static (UniqueAddress, bool, bool) Up(UniqueAddress node) => (node, false, false);
    private static (UniqueAddress, bool, bool) Gone(UniqueAddress node) => (node, true, true);

    [Fact]
    public void Three_of_four_workers_killed_at_once_are_marked_down_and_the_coordinator_stays()
    {
        var policy = new DowningPolicy(Stable);
        var view = View(Coordinator, Gone(Workers[0]), Gone(Workers[1]), Gone(Workers[2]), Up(Workers[3]));
        Assert.Empty(policy.Observe(T0, view).Down);
        Assert.Empty(policy.Observe(T0 + Stable - TimeSpan.FromMilliseconds(1), view).Down);
        var decision = policy.Observe(T0 + Stable, view);
        Assert.Equal(Workers[..3], decision.Down);
        Assert.DoesNotContain(Coordinator, decision.Down);
    }

    [Fact]
    public void Every_worker_lost_leaves_a_coordinator_without_a_standby_up_with_its_queue()
    {
        var policy = new DowningPolicy(Stable);
        var view = View(Coordinator, Workers.Select(Gone).ToArray());
        policy.Observe(T0, view);
        Assert.Equal(Workers, policy.Observe(T0 + Stable, view).Down);
    }

    [Fact]
    public void A_worker_that_no_longer_hears_the_coordinator_downs_nothing_and_the_coordinator_does_not_act_on_its_own_unreachability()
    {
        // A resumed worker's stale view, or a restart: the gossip says the coordinator is unreachable (a worker's record),
        // which Akka's resolver answered by downing the coordinator as "indirectly connected".
        var worker = new DowningPolicy(Stable);
        var fromWorker = View(Workers[0], (Coordinator, true, true), Up(Workers[1]), Up(Workers[2]));
        worker.Observe(T0, fromWorker);
        Assert.Empty(worker.Observe(T0 + TimeSpan.FromMinutes(5), fromWorker).Down);

        var coordinator = new DowningPolicy(Stable);
        var fromCoordinator = View(Coordinator, Up(Workers[0]), Up(Workers[1]), Up(Workers[2]));
        coordinator.Observe(T0, fromCoordinator);
        Assert.Empty(coordinator.Observe(T0 + TimeSpan.FromMinutes(5), fromCoordinator).Down);
    }

    [Fact]
    public void A_worker_frozen_for_less_than_stable_after_is_kept_and_its_clock_starts_again()
    {
        var policy = new DowningPolicy(Stable);
        var frozen = View(Coordinator, Gone(Workers[0]), Up(Workers[1]));
        var back = View(Coordinator, Up(Workers[0]), Up(Workers[1]));
        policy.Observe(T0, frozen);
        Assert.Empty(policy.Observe(T0 + TimeSpan.FromSeconds(6), frozen).Down);
        Assert.Empty(policy.Observe(T0 + TimeSpan.FromSeconds(6.5), back).Down);
        Assert.Empty(policy.Observe(T0 + TimeSpan.FromSeconds(8), frozen).Down);
        Assert.Empty(policy.Observe(T0 + TimeSpan.FromSeconds(14.9), frozen).Down);
        Assert.Equal([Workers[0]], policy.Observe(T0 + TimeSpan.FromSeconds(15), frozen).Down);
    }

    [Fact]
    public void A_worker_unreachable_only_to_another_worker_is_marked_down_so_that_the_cluster_converges()
    {
        var policy = new DowningPolicy(Stable);
        var view = View(Coordinator, Up(Workers[0]), (Workers[1], true, false));
        policy.Observe(T0, view);
        Assert.Equal([Workers[1]], policy.Observe(T0 + Stable, view).Down);
    }

    [Fact]
    public void A_standby_coordinator_that_the_oldest_coordinator_hears_decides_nothing()
    {
        var policy = new DowningPolicy(Stable);
        var view = View(Standby, Up(Coordinator), Gone(Workers[0]), Up(Workers[1]));
        policy.Observe(T0, view);
        Assert.Empty(policy.Observe(T0 + TimeSpan.FromMinutes(1), view).Down);
    }

    [Fact]
    public void An_oldest_coordinator_cut_off_from_everyone_gives_way_to_its_standby_which_marks_it_down()
    {
        var oldest = new DowningPolicy(Stable);
        var fromOldest = View(Coordinator, Gone(Standby), Gone(Workers[0]), Gone(Workers[1]));
        oldest.Observe(T0, fromOldest);
        Assert.Empty(oldest.Observe(T0 + TimeSpan.FromSeconds(6), fromOldest).Down);
        var gives = oldest.Observe(T0 + Stable, fromOldest);
        Assert.Equal([Coordinator], gives.Down);
        Assert.Contains("takes over", gives.Reason);

        var standby = new DowningPolicy(Stable);
        var fromStandby = View(Standby, Gone(Coordinator), Up(Workers[0]), Up(Workers[1]));
        standby.Observe(T0, fromStandby);
        Assert.Equal([Coordinator], standby.Observe(T0 + Stable, fromStandby).Down);
    }

    [Fact]
    public void A_standby_cut_off_together_with_workers_from_the_oldest_coordinator_gives_way_and_the_oldest_keeps_the_cluster()
    {
        // A partition: the oldest coordinator and worker 0 | the standby and workers 1 and 2.
        var standby = new DowningPolicy(Stable);
        var fromStandby = View(Standby, Gone(Coordinator), Gone(Workers[0]), Up(Workers[1]), Up(Workers[2]));
        standby.Observe(T0, fromStandby);
        Assert.Equal([Standby], standby.Observe(T0 + Stable, fromStandby).Down);

        var oldest = new DowningPolicy(Stable);
        var fromOldest = View(Coordinator, Gone(Standby), Up(Workers[0]), Gone(Workers[1]), Gone(Workers[2]));
        oldest.Observe(T0, fromOldest);
        Assert.Equal([Standby, Workers[1], Workers[2]], oldest.Observe(T0 + Stable, fromOldest).Down);
    }

    [Fact]
    public void Workers_never_decide_even_when_every_coordinator_is_gone()
    {
        var policy = new DowningPolicy(Stable);
        var view = View(Workers[0], Gone(Coordinator), Gone(Standby), Gone(Workers[1]));
        policy.Observe(T0, view);
        Assert.Empty(policy.Observe(T0 + TimeSpan.FromHours(1), view).Down);
    }

    [Fact]
    public void A_member_that_left_and_came_back_as_a_new_incarnation_starts_a_fresh_clock()
    {
        var policy = new DowningPolicy(Stable);
        policy.Observe(T0, View(Coordinator, Gone(Workers[0])));
        var reborn = new UniqueAddress(Workers[0].Address, 99);
        var view = new MembershipView(Coordinator, true, 0, [new MemberView(reborn, false, 2, true, true)]);
        Assert.Empty(policy.Observe(T0 + Stable, view).Down);
        Assert.Equal([reborn], policy.Observe(T0 + Stable + Stable, view).Down);
    }
}
