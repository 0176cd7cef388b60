using System.Collections.Immutable;

namespace Orchestrator.Cluster.Coordinator;

/// <summary>What the scheduler decided for the job at the head of the queue.</summary>
public abstract record ScheduleDecision
{
    private ScheduleDecision() { }

    /// <summary>Start the job on these workers; index = rank.</summary>
    public sealed record Start(ImmutableList<RegisteredWorker> Workers) : ScheduleDecision;

    /// <summary>Not now; <paramref name="Reason"/> is what the job's status shows.</summary>
    public sealed record Wait(string Reason) : ScheduleDecision;
}

/// <summary>
/// Gang scheduling, first in first out: the job at the head of the queue starts only when it can have
/// every device it asks for at once (a job never holds part of the cluster while it waits), and no
/// later job overtakes it. A pure policy: the job manager carries out what it decides.
/// </summary>
public static class GangScheduler
{
    /// <param name="job">The job at the head of the queue.</param>
    /// <param name="workers">Every registered worker.</param>
    /// <param name="busy">Nodes held by running jobs (or still stopping one).</param>
    /// <remarks>A recovering job takes fewer workers than it asks for when that is all there is, down to its minWorkers.</remarks>
    public static ScheduleDecision Decide(JobRecord job, IReadOnlyList<RegisteredWorker> workers, IReadOnlySet<string> busy)
    {
        var free = workers.Where(w => w.Reachable && w.RunningJob is null && !busy.Contains(w.Node)).ToList();
        var fitting = free.Where(w => w.DeviceCount >= job.DevicesPerWorker)
                          .OrderBy(w => w.Node, StringComparer.Ordinal).Take(job.Workers).ToImmutableList();
        if (fitting.Count == job.Workers) return new ScheduleDecision.Start(fitting);
        if (job.State == JobState.Recovering && job.MinWorkers > 0 && fitting.Count >= job.MinWorkers) return new ScheduleDecision.Start(fitting);
        return new ScheduleDecision.Wait(WaitReason(job, workers, free));
    }

    /// <summary>The status line of a job that is not at the head of the queue.</summary>
    public static string Behind(int jobsAhead) =>
        $"waiting behind {jobsAhead} earlier job{(jobsAhead == 1 ? "" : "s")} in the queue (first in, first out)";

    private static string WaitReason(JobRecord job, IReadOnlyList<RegisteredWorker> workers, IReadOnlyList<RegisteredWorker> free)
    {
        int total = workers.Sum(w => w.DeviceCount);
        int freeDevices = free.Sum(w => w.DeviceCount);
        string wants = job.Workers == 1
            ? $"waiting for {job.DevicesRequested} device{S(job.DevicesRequested)} on 1 worker"
            : $"waiting for {job.DevicesRequested} devices ({job.Workers} workers with {job.DevicesPerWorker} device{S(job.DevicesPerWorker)} each)";
        string has = $"the cluster has {total} device{S(total)} on {workers.Count} worker{S(workers.Count)}, {freeDevices} free";
        int largest = workers.Count == 0 ? 0 : workers.Max(w => w.DeviceCount);
        string note = job.DevicesPerWorker > largest && workers.Count > 0
            ? $"; no worker has {job.DevicesPerWorker} devices (the largest has {largest})"
            : "";
        return $"{wants}; {has}{note}";
    }

    private static string S(int n) => n == 1 ? "" : "s";
}
