using Orchestrator.Cluster.Membership;

namespace Orchestrator.Cluster.Tests;

/// <summary>When a node without the coordinator role gives up on its cluster and joins again through the seeds.</summary>
public sealed class CoordinatorAbsenceTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void A_member_without_a_reachable_coordinator_rejoins_once_the_limit_has_passed()
    {
        var absence = new CoordinatorAbsence(TimeSpan.FromSeconds(20));
        Assert.False(absence.Observe(T0, selfUp: true, coordinatorReachable: false));
        Assert.False(absence.Observe(T0.AddSeconds(19.9), selfUp: true, coordinatorReachable: false));
        Assert.True(absence.Observe(T0.AddSeconds(20), selfUp: true, coordinatorReachable: false));
    }

    [Fact]
    public void A_coordinator_seen_in_between_starts_the_clock_again()
    {
        var absence = new CoordinatorAbsence(TimeSpan.FromSeconds(20));
        absence.Observe(T0, selfUp: true, coordinatorReachable: false);
        Assert.False(absence.Observe(T0.AddSeconds(15), selfUp: true, coordinatorReachable: true));
        Assert.False(absence.Observe(T0.AddSeconds(16), selfUp: true, coordinatorReachable: false));
        Assert.False(absence.Observe(T0.AddSeconds(35), selfUp: true, coordinatorReachable: false));
        Assert.True(absence.Observe(T0.AddSeconds(36), selfUp: true, coordinatorReachable: false));
    }

    [Fact]
    public void A_node_still_joining_waits_for_its_seeds_however_long_that_takes()
    {
        var absence = new CoordinatorAbsence(TimeSpan.FromSeconds(20));
        Assert.False(absence.Observe(T0, selfUp: false, coordinatorReachable: false));
        Assert.False(absence.Observe(T0.AddMinutes(10), selfUp: false, coordinatorReachable: false));
        // Up at last, and the clock starts only now.
        Assert.False(absence.Observe(T0.AddMinutes(10).AddSeconds(1), selfUp: true, coordinatorReachable: false));
        Assert.False(absence.Observe(T0.AddMinutes(10).AddSeconds(20), selfUp: true, coordinatorReachable: false));
        Assert.True(absence.Observe(T0.AddMinutes(10).AddSeconds(21), selfUp: true, coordinatorReachable: false));
    }
}
