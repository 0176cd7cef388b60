using Prometheus;

namespace Orchestrator.Cluster.Metrics;

/// <summary>
/// Every Prometheus metric a node exports (docs/observability.md lists them), in one place, in prometheus-net's default
/// registry: the node host serves that registry (<c>/metrics</c>). Workers fill the training and link metrics, the
/// coordinator the job and queue metrics, the checkpoint node the checkpoint ones; every node its cluster view. A job's
/// labelled series are removed when the job ends on that node, so that a long-lived cluster does not grow a series per
/// job forever.
/// </summary>
public static class NodeMetrics
{
    private static readonly string[] Job = ["job"];
    private static readonly string[] Link = ["link"];

    // Workers.
    public static readonly Counter WorkerSteps = Prometheus.Metrics.CreateCounter("orchestrator_worker_steps_total",
        "Training steps this worker took, by job (a recovery that steps back counts its repeated steps again).", Job);
    public static readonly Gauge WorkerSamplesPerSecond = Prometheus.Metrics.CreateGauge("orchestrator_worker_samples_per_second",
        "This worker's training throughput at its last report, by job.", Job);
    public static readonly Histogram AllReduceSeconds = Prometheus.Metrics.CreateHistogram("orchestrator_allreduce_seconds",
        "Seconds one all-reduce took on this worker, by link (akka or tcp): a step's whole gradient, or one bucket of it when buckets are reduced while backward runs.",
        new HistogramConfiguration { LabelNames = Link, Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });
    public static readonly Counter AllReduceBytes = Prometheus.Metrics.CreateCounter("orchestrator_allreduce_bytes_total",
        "Gradient bytes this worker sent to its ring neighbour, by link: 2(n-1)/n of the gradient's size on the wire per step (4 bytes a value, 2 with compression).", Link);
    public static readonly Counter CollectiveFailures = Prometheus.Metrics.CreateCounter("orchestrator_collective_failures_total",
        "Collectives that failed on this worker (a lost or silent peer), by link.", Link);

    // Every node.
    public static readonly Gauge Memory = Prometheus.Metrics.CreateGauge("orchestrator_process_memory_bytes",
        "This node's memory, by part: rss, rss_peak (since it started), file (mapped files: runtime, libtorch, assemblies), anonymous, " +
        "gc_committed and gc_heap (the .NET GC's share of anonymous and its live objects), native (anonymous the GC does not hold: libtorch, threads, malloc).",
        ["part"]);

    static NodeMetrics() => Prometheus.Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
    {
        var m = ProcessMemory.Read();
        foreach (var (part, bytes) in new[] { ("rss", m.Rss), ("rss_peak", m.RssPeak), ("file", m.File), ("anonymous", m.Anonymous),
                     ("gc_committed", m.GcCommitted), ("gc_heap", m.GcHeap), ("native", m.Native) })
            Memory.WithLabels(part).Set(bytes);
    });

    // Coordinator.
    public static readonly Gauge JobsByState = Prometheus.Metrics.CreateGauge("orchestrator_jobs",
        "Jobs the coordinator knows, by state.", ["state"]);
    public static readonly Gauge QueueLength = Prometheus.Metrics.CreateGauge("orchestrator_queue_length",
        "Jobs waiting for workers (queued or recovering).");
    public static readonly Counter Recoveries = Prometheus.Metrics.CreateCounter("orchestrator_recoveries_total",
        "Times a job went on from its checkpoint with a new ring after losing a worker or its ring.");
    public static readonly Gauge JobStep = Prometheus.Metrics.CreateGauge("orchestrator_job_step",
        "The step rank 0 of a running job last reported, by job.", Job);
    public static readonly Gauge JobSamplesPerSecond = Prometheus.Metrics.CreateGauge("orchestrator_job_samples_per_second",
        "A running job's throughput: the sum of its workers' last reports, by job.", Job);

    // Checkpoint node.
    public static readonly Histogram CheckpointWriteSeconds = Prometheus.Metrics.CreateHistogram("orchestrator_checkpoint_write_seconds",
        "Seconds to write and sync one checkpoint to the store, from its last chunk to its commit.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.005, 2, 14) });
    public static readonly Histogram CheckpointEvaluationSeconds = Prometheus.Metrics.CreateHistogram("orchestrator_checkpoint_evaluation_seconds",
        "Seconds to evaluate one checkpoint on the held-out data.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.01, 2, 14) });

    // Every node.
    public static readonly Gauge ClusterMembers = Prometheus.Metrics.CreateGauge("orchestrator_cluster_members",
        "Cluster members as this node sees them, by status (up, joining, leaving, exiting, down, weakly_up) and reachability.",
        ["status", "reachable"]);

    private static volatile Akka.Actor.ActorSystem? _system;
    private static int _watching;

    /// <summary>
    /// Counts <see cref="ClusterMembers"/> from <paramref name="system"/>'s view of the cluster whenever the metrics are read
    /// (a worker that starts a fresh actor system calls this again with the new one).
    /// </summary>
    public static void WatchCluster(Akka.Actor.ActorSystem system)
    {
        _system = system;
        if (Interlocked.Exchange(ref _watching, 1) == 1) return;
        Prometheus.Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            if (_system is not { WhenTerminated.IsCompleted: false } current) return;
            var state = Akka.Cluster.Cluster.Get(current).State;
            var unreachable = state.Unreachable;
            var counts = state.Members.GroupBy(m => (Status: StatusName(m.Status), Reachable: !unreachable.Contains(m)))
                .ToDictionary(g => g.Key, g => g.Count());
            foreach (var status in new[] { "joining", "weakly_up", "up", "leaving", "exiting", "down" })
                foreach (var reachable in new[] { true, false })
                    ClusterMembers.WithLabels(status, reachable ? "true" : "false").Set(counts.GetValueOrDefault((status, reachable)));
        });
    }

    private static string StatusName(Akka.Cluster.MemberStatus status) => status switch
    {
        Akka.Cluster.MemberStatus.Joining => "joining",
        Akka.Cluster.MemberStatus.WeaklyUp => "weakly_up",
        Akka.Cluster.MemberStatus.Up => "up",
        Akka.Cluster.MemberStatus.Leaving => "leaving",
        Akka.Cluster.MemberStatus.Exiting => "exiting",
        _ => "down",
    };

    /// <summary>Forgets a job's series on this node (its steps counter too: the job is over here).</summary>
    public static void ForgetJob(string jobId)
    {
        WorkerSteps.RemoveLabelled(jobId);
        WorkerSamplesPerSecond.RemoveLabelled(jobId);
        JobStep.RemoveLabelled(jobId);
        JobSamplesPerSecond.RemoveLabelled(jobId);
    }
}
