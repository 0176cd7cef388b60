using Orchestrator.Cluster.Membership;

namespace Orchestrator.Cluster.Tests;

/// <summary>When a node without the coordinator role gives up on its cluster and joins again through the seeds.</summary>
public sealed class CoordinatorAbsenceTests
{
    private static readonly TimeSpan T0 = TimeSpan.FromHours(3);   // a monotonic clock's reading

    [Fact]
    public void A_member_without_a_reachable_coordinator_rejoins_once_the_limit_has_passed()
    {
        var absence = new CoordinatorAbsence(TimeSpan.FromSeconds(20));
        Assert.False(absence.Observe(T0, selfUp: true, coordinatorReachable: false));
        Assert.False(absence.Observe(T0 + TimeSpan.FromSeconds(19.9), selfUp: true, coordinatorReachable: false));
        Assert.True(absence.Observe(T0 + TimeSpan.FromSeconds(20), selfUp: true, coordinatorReachable: false));
    }

    [Fact]
    public void A_coordinator_seen_in_between_starts_the_clock_again()
    {
        var absence = new CoordinatorAbsence(TimeSpan.FromSeconds(20));
        absence.Observe(T0, selfUp: true, coordinatorReachable: false);
        Assert.False(absence.Observe(T0 + TimeSpan.FromSeconds(15), selfUp: true, coordinatorReachable: true));
        Assert.False(absence.Observe(T0 + TimeSpan.FromSeconds(16), selfUp: true, coordinatorReachable: false));
        Assert.False(absence.Observe(T0 + TimeSpan.FromSeconds(35), selfUp: true, coordinatorReachable: false));
        Assert.True(absence.Observe(T0 + TimeSpan.FromSeconds(36), selfUp: true, coordinatorReachable: false));
    }

    [Fact]
    public void A_node_still_joining_waits_for_its_seeds_however_long_that_takes()
    {
        var absence = new CoordinatorAbsence(TimeSpan.FromSeconds(20));
        Assert.False(absence.Observe(T0, selfUp: false, coordinatorReachable: false));
        Assert.False(absence.Observe(T0 + TimeSpan.FromMinutes(10), selfUp: false, coordinatorReachable: false));
        // Up at last, and the clock starts only now.
        Assert.False(absence.Observe(T0 + TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1), selfUp: true, coordinatorReachable: false));
        Assert.False(absence.Observe(T0 + TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(20), selfUp: true, coordinatorReachable: false));
        Assert.True(absence.Observe(T0 + TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(21), selfUp: true, coordinatorReachable: false));
    }
}
