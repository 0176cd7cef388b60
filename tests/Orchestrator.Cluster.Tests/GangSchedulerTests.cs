using System.Collections.Immutable;
using Akka.Actor;
using Orchestrator.Cluster.Coordinator;
using static Orchestrator.Core.Protocol.ClusterProtocol;

namespace Orchestrator.Cluster.Tests;

public sealed class GangSchedulerTests
{
    private static readonly HashSet<string> NoneBusy = [];

    internal static RegisteredWorker Worker(string node, int devices, string? running = null, bool reachable = true) =>
        new(node, ActorRefs.Nobody, Enumerable.Range(0, devices).Select(i => new DeviceInfo("cpu", i, null)).ToArray(), running, reachable);

    internal static JobRecord Job(int workers, int devicesPerWorker, long seq = 1) =>
        new($"j-{seq}", seq, "j", "{}", workers, devicesPerWorker, 1, JobState.Queued, DateTimeOffset.UnixEpoch);

    [Fact]
    public void A_job_that_fits_starts_on_that_many_workers_in_a_stable_order()
    {
        var decision = GangScheduler.Decide(Job(2, 1), [Worker("c", 1), Worker("a", 1), Worker("b", 1)], NoneBusy);
        var start = Assert.IsType<ScheduleDecision.Start>(decision);
        Assert.Equal(["a", "b"], start.Workers.Select(w => w.Node));
    }

    [Fact]
    public void A_recovering_job_goes_on_with_fewer_workers_down_to_its_minimum_and_a_queued_one_never_does()
    {
        var two = ImmutableList.Create(Worker("a", 1), Worker("b", 1));
        var recovering = Job(3, 1) with { State = JobState.Recovering, MinWorkers = 2 };
        Assert.Equal(["a", "b"], Assert.IsType<ScheduleDecision.Start>(GangScheduler.Decide(recovering, two, NoneBusy)).Workers.Select(w => w.Node));
        Assert.IsType<ScheduleDecision.Wait>(GangScheduler.Decide(recovering with { MinWorkers = 3 }, two, NoneBusy));
        Assert.IsType<ScheduleDecision.Wait>(GangScheduler.Decide(recovering, two, new HashSet<string> { "b" }));
        Assert.IsType<ScheduleDecision.Wait>(GangScheduler.Decide(Job(3, 1) with { MinWorkers = 2 }, two, NoneBusy));
    }

    [Fact]
    public void A_job_never_takes_part_of_what_it_needs()
    {
        var decision = GangScheduler.Decide(Job(3, 1), [Worker("a", 1), Worker("b", 1)], NoneBusy);
        var wait = Assert.IsType<ScheduleDecision.Wait>(decision);
        Assert.Equal("waiting for 3 devices (3 workers with 1 device each); the cluster has 2 devices on 2 workers, 2 free", wait.Reason);
    }

    [Fact]
    public void Busy_unreachable_and_still_running_workers_are_not_free()
    {
        var workers = ImmutableList.Create(Worker("a", 1), Worker("b", 1, running: "old-job"), Worker("c", 1, reachable: false), Worker("d", 1));
        var wait = Assert.IsType<ScheduleDecision.Wait>(GangScheduler.Decide(Job(2, 1), workers, new HashSet<string> { "d" }));
        Assert.EndsWith("4 devices on 4 workers, 1 free", wait.Reason);
        Assert.IsType<ScheduleDecision.Start>(GangScheduler.Decide(Job(1, 1), workers, new HashSet<string> { "d" }));
    }

    [Fact]
    public void Devices_per_worker_must_fit_on_one_node_and_the_reason_says_so()
    {
        var wait = Assert.IsType<ScheduleDecision.Wait>(GangScheduler.Decide(Job(1, 4), [Worker("a", 2), Worker("b", 2)], NoneBusy));
        Assert.Equal("waiting for 4 devices on 1 worker; the cluster has 4 devices on 2 workers, 4 free; no worker has 4 devices (the largest has 2)", wait.Reason);
        Assert.IsType<ScheduleDecision.Start>(GangScheduler.Decide(Job(1, 2), [Worker("a", 2)], NoneBusy));
    }

    [Fact]
    public void An_empty_cluster_says_so()
    {
        var wait = Assert.IsType<ScheduleDecision.Wait>(GangScheduler.Decide(Job(1, 1), [], NoneBusy));
        Assert.Equal("waiting for 1 device on 1 worker; the cluster has 0 devices on 0 workers, 0 free", wait.Reason);
    }
}
