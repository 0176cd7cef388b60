using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Cluster;
using Orchestrator.Cluster.Checkpoint;
using Orchestrator.Cluster.Logs;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.CheckpointProtocol;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Coordinator;

/// <summary>Messages between the job manager and its runners; both live on the coordinator, so these never cross the wire.</summary>
public static class RunnerMessages
{
    /// <summary>Rank 0's latest report, and every worker's latest figures.</summary>
    public sealed record Progress(string JobId, TrainingProgress Report, ImmutableList<JobProtocol.WorkerStat> Workers);
    public sealed record Completed(string JobId, TrainingCompleted Result);
    public sealed record Failed(string JobId, string Error);
    /// <summary>The job lost a worker or its ring: it may go on from its latest checkpoint on the workers that are left (the manager decides).</summary>
    public sealed record Interrupted(string JobId, string Reason);
    /// <summary>Every worker of the job has stopped (or was given up on): its nodes are free.</summary>
    public sealed record Finished(string JobId);
    /// <summary>Manager → runner: the job was cancelled; stop the workers.</summary>
    public sealed record Stop(string JobId);
    /// <summary>Manager → runner: trace steps <paramref name="From"/> to <paramref name="To"/> on every worker.</summary>
    public sealed record Trace(string JobId, string TraceId, long From, long To);
}

/// <summary>
/// Runs one generation of one job on the workers the manager gave it (index = rank): asks the
/// checkpoint actor where to resume from, starts training on each worker, waits until every one has
/// loaded its data (and the checkpoint), then tells all of them to begin with the ring's endpoints.
/// Relays progress, compares the workers' parameter digests at every checkpoint and at the end (a
/// mismatch fails the job), and gathers the results.
///
/// A worker whose node becomes unreachable (about 4 s after a kill, from the failure detector; the
/// runner does not wait for the split-brain resolver's removal), whose agent is gone, or whose ring
/// failed interrupts the generation: the runner stops the others and tells the manager, which
/// recovers the job from its latest checkpoint with a new generation. Either way it then waits until
/// every live worker has said its compute ended (or <c>stop-timeout</c> passed) before telling the
/// manager that the nodes are free.
/// </summary>
public sealed class JobRunner : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan StoreTimeout = TimeSpan.FromSeconds(10);
    private readonly string _jobId;
    private readonly string _specJson;
    private readonly int _generation;
    private readonly ImmutableList<RegisteredWorker> _workers;
    private readonly CoordinatorSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _active = [];
    private readonly Dictionary<int, string> _endpoints = new();
    private readonly Dictionary<int, JobProtocol.WorkerStat> _stats = new();
    private readonly Dictionary<int, TrainingCompleted> _results = new();
    private readonly Dictionary<long, Dictionary<int, string>> _digests = new();
    private string? _store;
    private readonly IActorRef _jobLogs;
    private readonly IActorRef _traces;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="jobLogs">Where the job's log lines go (the runner's own, and those its workers send).</param>
    public static Props Props(string jobId, string specJson, int generation, ImmutableList<RegisteredWorker> workers, CoordinatorSettings settings,
                              IActorRef? jobLogs = null, IActorRef? traces = null) =>
        Akka.Actor.Props.Create(() => new JobRunner(jobId, specJson, generation, workers, settings, jobLogs ?? ActorRefs.Nobody, traces ?? ActorRefs.Nobody));

    public JobRunner(string jobId, string specJson, int generation, ImmutableList<RegisteredWorker> workers, CoordinatorSettings settings, IActorRef jobLogs,
                     IActorRef traces)
    {
        _jobLogs = jobLogs;
        _traces = traces;
        _jobId = jobId;
        _specJson = specJson;
        _generation = generation;
        _workers = workers;
        _settings = settings;
        foreach (var w in workers)
        {
            Context.Watch(w.Agent);
            _active.Add(w.Agent);
        }
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.UnreachableMember));
        FindCheckpoint();
    }

    protected override void PostStop() => Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);

    /// <summary>Asks the checkpoint actor for the latest verified checkpoint; without an answer the job starts from step 0.</summary>
    private void FindCheckpoint()
    {
        _store = CheckpointStoreLocator.Path(Context.System);
        if (_store is null)
        {
            Note(LogLevel.WarningLevel, "no node has the checkpoint role; training without checkpoints");
            StartWorkers(-1);
            return;
        }
        ((ExtendedActorSystem)Context.System).Provider.ResolveActorRef(_store)
            .Ask<LatestCheckpoint>(new GetLatestCheckpoint(_jobId), StoreTimeout)
            .PipeTo(Self, failure: ex => new LatestCheckpoint(_jobId, -1, 0, "", $"the checkpoint actor did not answer: {ex.Message}"));
        Receive<LatestCheckpoint>(latest =>
        {
            if (latest.Skipped.Length > 0) Note(LogLevel.WarningLevel, $"checkpoints skipped as unverified: {latest.Skipped}");
            if (latest.Step >= 0) Note(LogLevel.InfoLevel, $"generation {_generation} resumes from the checkpoint at step {latest.Step}");
            StartWorkers(latest.Step);
        });
        CommonFailures();
    }

    private void StartWorkers(long resumeStep)
    {
        var peers = _workers.Select(w => w.Node).ToList();
        var ringKey = Collectives.Links.RingHandshake.NewKey();
        for (int rank = 0; rank < _workers.Count; rank++)
            _workers[rank].Agent.Tell(new StartTraining(_jobId, _specJson, _generation, rank, _workers.Count, peers, _store ?? "", resumeStep, ringKey));
        Timers.StartSingleTimer(nameof(ReadyDeadline), ReadyDeadline.Instance, ReadyTimeout);
        Become(Starting);
    }

    private void Starting()
    {
        Receive<TrainingStarted>(m =>
        {
            if (RankOf(Sender) is not { } rank) return;
            _endpoints[rank] = m.Endpoint;
            Note(LogLevel.InfoLevel, $"rank {rank} ready on {m.Node}");
            if (_endpoints.Count < _workers.Count) return;
            Timers.Cancel(nameof(ReadyDeadline));
            var begin = new BeginTraining(_jobId, _generation, Enumerable.Range(0, _workers.Count).Select(r => _endpoints[r]).ToList());
            NameUploader();
            // Again every 10 s while the job trains: a checkpoint actor that restarted has forgotten it.
            Timers.StartPeriodicTimer(nameof(NameUploaderAgain), NameUploaderAgain.Instance, UploaderRefresh);
            foreach (var w in _workers) w.Agent.Tell(begin);
            Note(LogLevel.InfoLevel, $"generation {_generation} training on {_workers.Count} worker(s)");
            Become(Running);
        });
        Receive<ReadyDeadline>(_ =>
        {
            var missing = Enumerable.Range(0, _workers.Count).Where(r => !_endpoints.ContainsKey(r)).Select(r => $"rank {r} ({_workers[r].Node})");
            FailAndStop($"not every worker was ready within {ReadyTimeout.TotalMinutes:0} min: {string.Join(", ", missing)}");
        });
        CommonFailures();
    }

    /// <summary>Tells the checkpoint actor that this generation's rank 0 is the one node whose snapshots of this job it takes.</summary>
    private void NameUploader()
    {
        if (_store is not null)
            ((ExtendedActorSystem)Context.System).Provider.ResolveActorRef(_store).Tell(new CheckpointProtocol.UploaderFor(_jobId, _generation, _workers[0].Node));
    }

    private void Running()
    {
        Receive<NameUploaderAgain>(_ => NameUploader());
        Receive<TrainingProgress>(m =>
        {
            if (RankOf(Sender) is not { } rank) return;
            _stats[rank] = new JobProtocol.WorkerStat(m.Node, rank, m.Step, m.SamplesPerSecond, m.CommunicationShare);
            if (rank == 0) Context.Parent.Tell(new RunnerMessages.Progress(_jobId, m, [.. _stats.Values.OrderBy(s => s.Rank)]));
        });
        Receive<CheckpointDigest>(m =>
        {
            if (RankOf(Sender) is not { } rank) return;
            if (!_digests.TryGetValue(m.Step, out var byRank)) _digests[m.Step] = byRank = new Dictionary<int, string>();
            byRank[rank] = m.Digest;
            if (byRank.Count < _workers.Count) return;
            _digests.Remove(m.Step);
            if (byRank.Values.Distinct().Count() > 1)
                FailAndStop($"replicas diverged: parameter digests differ at the checkpoint after step {m.Step} (" +
                    string.Join(", ", byRank.OrderBy(r => r.Key).Select(r => $"rank {r.Key}: {r.Value[..12]}")) + ")");
        });
        Receive<TrainingCompleted>(m =>
        {
            if (RankOf(Sender) is not { } rank) return;
            _results[rank] = m;
            if (_results.Count < _workers.Count) return;
            var digests = _results.OrderBy(r => r.Key).Select(r => r.Value.Digest).ToList();
            if (digests.Distinct().Count() > 1)
            {
                FailAndStop("replicas diverged: parameter digests differ at the end (" +
                    string.Join(", ", _results.OrderBy(r => r.Key).Select(r => $"rank {r.Key}: {r.Value.Digest[..12]}")) + ")");
                return;
            }
            Context.Parent.Tell(new RunnerMessages.Completed(_jobId, _results[0]));
            BecomeStopping(sendStop: false);   // the workers end by themselves after the last step
        });
        CommonFailures();
    }

    private void CommonFailures()
    {
        Receive<JobLogBatch>(RelayLog);
        Receive<RunnerMessages.Trace>(t =>
        {
            foreach (var w in _workers) w.Agent.Tell(new TraceSteps(_jobId, _generation, t.TraceId, t.From, t.To));
        });
        Receive<TraceSpans>(m =>
        {
            if (RankOf(Sender) is { } rank && m.JobId == _jobId) _traces.Tell(new Tracing.TraceRecorder.Part(_jobId, rank, m));
        });
        Receive<TrainingFailed>(m =>
        {
            if (RankOf(Sender) is null) { _log.Warning("job {0}: refused a failure report from {1}, not a worker of this job", _jobId, Sender.Path); return; }
            if (m.Recoverable) Interrupt($"worker {m.Node}: {m.Error}", lost: []);
            else FailAndStop($"worker {m.Node}: {m.Error}");
        });
        Receive<TrainingStopped>(m =>
        {
            if (RankOf(Sender) is null) return;   // not a worker of this job
            _active.Remove(Sender);
            // A worker that finished its last step stops while the others still finish theirs: expected.
            if (RankOf(Sender) is { } rank && _results.ContainsKey(rank)) return;
            Interrupt($"worker {m.Node} stopped training before the job ended", lost: []);
        });
        Receive<Terminated>(t =>
        {
            _active.Remove(t.ActorRef);
            Interrupt($"worker {NodeOf(t.ActorRef)} was lost (its node left the cluster or stopped)", lost: [t.ActorRef]);
        });
        Receive<ClusterEvent.UnreachableMember>(u =>
        {
            var lost = _workers.Where(w => w.Agent.Path.Address.Equals(u.Member.Address)).ToList();
            if (lost.Count == 0) return;
            Interrupt($"worker {u.Member.Address} is unreachable (crashed, frozen or cut off)", lost.Select(w => w.Agent).ToList());
        });
        Receive<RunnerMessages.Stop>(_ => BecomeStopping(sendStop: true));
    }

    /// <summary>This generation cannot go on; the manager recovers the job (or fails it when it has no recoveries left).</summary>
    private void Interrupt(string reason, IReadOnlyList<IActorRef> lost)
    {
        // A lost node will never confirm that it stopped: waiting for it would only delay the recovery.
        foreach (var agent in lost) _active.Remove(agent);
        Note(LogLevel.WarningLevel, $"generation {_generation} interrupted: {reason}; stopping its other workers");
        Context.Parent.Tell(new RunnerMessages.Interrupted(_jobId, reason));
        BecomeStopping(sendStop: true);
    }

    private void FailAndStop(string error)
    {
        Note(LogLevel.ErrorLevel, $"{error}; stopping its other workers");
        Context.Parent.Tell(new RunnerMessages.Failed(_jobId, error));
        BecomeStopping(sendStop: true);
    }

    private void BecomeStopping(bool sendStop)
    {
        if (sendStop) foreach (var agent in _active) agent.Tell(new StopTraining(_jobId));
        Timers.Cancel(nameof(ReadyDeadline));
        Timers.Cancel(nameof(NameUploaderAgain));
        Timers.StartSingleTimer(nameof(StopDeadline), StopDeadline.Instance, _settings.StopTimeout);
        Become(Stopping);
        FinishIfAllStopped();
    }

    private void Stopping()
    {
        Receive<TrainingStopped>(_ => { _active.Remove(Sender); FinishIfAllStopped(); });
        Receive<Terminated>(t => { _active.Remove(t.ActorRef); FinishIfAllStopped(); });
        Receive<ClusterEvent.UnreachableMember>(u =>
        {
            _active.RemoveWhere(a => a.Path.Address.Equals(u.Member.Address));
            FinishIfAllStopped();
        });
        Receive<StopDeadline>(_ =>
        {
            Note(LogLevel.WarningLevel, $"{_active.Count} worker(s) did not confirm stopping within {_settings.StopTimeout}; their devices count as free");
            _active.Clear();
            FinishIfAllStopped();
        });
        Receive<RunnerMessages.Stop>(_ => { foreach (var agent in _active) agent.Tell(new StopTraining(_jobId)); });
        Receive<JobLogBatch>(RelayLog);   // a stopping worker's last lines (why it stopped)
        ReceiveAny(_ => { });   // late progress and results of a job that is ending
    }

    private void FinishIfAllStopped()
    {
        if (_active.Count > 0) return;
        Context.Parent.Tell(new RunnerMessages.Finished(_jobId));
        Context.Stop(Self);
    }

    /// <summary>A line for the node's log and for the job's own (<c>orchestrator logs</c>).</summary>
    private void Note(LogLevel level, string text)
    {
        Logs.JobLogRecorder.Note(Context.System, _log, _jobLogs, _jobId, level, text);
    }

    /// <summary>
    /// A worker's log lines into the job's log: only from a worker of this generation, at most a batch's worth, each line
    /// named with the worker's node and rank as this runner knows them (not as the batch claims).
    /// </summary>
    private void RelayLog(JobLogBatch batch)
    {
        if (RankOf(Sender) is not { } rank || batch.JobId != _jobId) return;
        var node = _workers[rank].Node;
        // A worker's clock is its own; a time stamp more than a day from ours is not one (it becomes the arrival time).
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var lines = (batch.Lines ?? []).Take(JobProtocol.JobLogLine.BatchLimit)
            .Where(l => l is { Text: not null, Level: not null })
            .Select(l => l with { Node = node, Rank = rank, AtMs = Math.Abs(l.AtMs - now) <= 86_400_000 ? l.AtMs : now }).ToList();
        if (batch.Dropped > 0)
            lines.Add(new JobProtocol.JobLogLine(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), node, rank, "warning",
                $"{batch.Dropped} line(s) dropped on this worker: it wrote them faster than they could be sent"));
        if (lines.Count > 0) _jobLogs.Tell(new Logs.JobLogRecorder.Append(_jobId, lines));
    }

    private int? RankOf(IActorRef agent)
    {
        int rank = _workers.FindIndex(w => w.Agent.Equals(agent));
        return rank < 0 ? null : rank;
    }

    private string NodeOf(IActorRef agent) => _workers.FirstOrDefault(w => w.Agent.Equals(agent))?.Node ?? agent.Path.Address.ToString();

    private sealed record ReadyDeadline
    {
        public static readonly ReadyDeadline Instance = new();
    }

    private static readonly TimeSpan UploaderRefresh = TimeSpan.FromSeconds(10);

    private sealed record NameUploaderAgain
    {
        public static readonly NameUploaderAgain Instance = new();
    }

    private sealed record StopDeadline
    {
        public static readonly StopDeadline Instance = new();
    }
}
