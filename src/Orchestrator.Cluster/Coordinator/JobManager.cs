using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Orchestrator.Cluster.Checkpoint;
using Orchestrator.Cluster.Membership;
using Orchestrator.Core.Jobs;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.JobEvents;
using static Orchestrator.Core.Protocol.JobProtocol;

using Orchestrator.Cluster.Logs;
using Orchestrator.Cluster.Metrics;
using Orchestrator.Cluster.Packages;

namespace Orchestrator.Cluster.Coordinator;

/// <summary>Typed registry key for the job manager singleton's proxy (Akka.Hosting).</summary>
public sealed class JobManagerKey
{
    private JobManagerKey() { }
}

/// <summary>
/// The cluster's job queue and every job's state: a cluster singleton on the coordinator role whose
/// state is event-sourced, so that a restarted coordinator knows every job it ever accepted. A submit
/// is answered only after its event is in the journal. Scheduling is gang, FIFO
/// (<see cref="GangScheduler"/>); each running job has a <see cref="JobRunner"/> child.
/// </summary>
public sealed class JobManager : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    public const string PersistenceIdValue = "job-manager";

    private readonly CoordinatorSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private JobBook _book = JobBook.Empty;
    private ImmutableList<RegisteredWorker> _workers = [];
    // Nodes held by each job that has a runner (running, or stopping after it ended).
    private readonly Dictionary<string, (IActorRef Runner, ImmutableList<string> Nodes)> _runners = new();
    // What the checkpoint actor last said about each job's checkpoints, and its last failed write (in memory: the files are the truth).
    private readonly Dictionary<string, IReadOnlyList<CheckpointView>> _checkpoints = new();
    private readonly Dictionary<string, (long Step, string Message)> _checkpointErrors = new();
    private readonly PackageSettings _packages;
    private IActorRef? _submitting;   // the submitter whose JobSubmitted is being written
    private bool _requeueDone;         // RequeueInterrupted has run since recovery
    private long? _snapshotAt;         // the journal position of the snapshot recovery started from
    private readonly string? _metricsDir, _tensorBoardDir, _jobLogsDir;
    private IActorRef _metrics = ActorRefs.Nobody;
    private IActorRef _jobLogs = ActorRefs.Nobody;
    private IActorRef _traces = ActorRefs.Nobody;

    public override string PersistenceId => PersistenceIdValue;

    /// <param name="dataDir">The node's data folder, where jobs' metrics histories (<c>metrics/</c>), TensorBoard folders
    /// (<c>tensorboard/</c>) and logs (<c>job-logs/</c>) are kept; null: histories and logs in memory only, no TensorBoard files.</param>
    public static Props Props(CoordinatorSettings settings, PackageSettings packages, string? dataDir = null) =>
        Akka.Actor.Props.Create(() => new JobManager(settings, packages, dataDir));

    public JobManager(CoordinatorSettings settings, PackageSettings packages, string? dataDir)
    {
        _settings = settings;
        _packages = packages;
        _metricsDir = dataDir is null ? null : Path.Combine(dataDir, "metrics");
        _tensorBoardDir = dataDir is null ? null : Path.Combine(dataDir, "tensorboard");
        _jobLogsDir = dataDir is null ? null : Path.Combine(dataDir, "job-logs");

        Recover<JobSubmitted>(e => _book = _book.Apply(e));
        Recover<JobStarted>(e => _book = _book.Apply(e));
        Recover<JobCompleted>(e => _book = _book.Apply(e));
        Recover<JobFailed>(e => _book = _book.Apply(e));
        Recover<JobCancelled>(e => _book = _book.Apply(e));
        Recover<JobRequeued>(e => _book = _book.Apply(e));
        Recover<JobRecovering>(e => _book = _book.Apply(e));
        Recover<SnapshotOffer>(offer =>
        {
            _book = JobBook.FromSnapshot((JobBookSnapshot)offer.Snapshot);
            _snapshotAt = offer.Metadata.SequenceNr;
        });
        Recover<RecoveryCompleted>(_ =>
        {
            _log.Info("job manager recovered {0} job(s), last sequence {1}, {2}", _book.BySequence.Count, _book.LastSequence,
                _snapshotAt is { } at ? $"from a snapshot at journal position {at} and {LastSequenceNr - at} event(s) after it" : $"from {LastSequenceNr} event(s)");
            // A long replay (a journal from before snapshots, or snapshots that failed) is not repeated at the next restart.
            if (LastSequenceNr - (_snapshotAt ?? 0) >= _settings.SnapshotEvery) SaveSnapshot(_book.ToSnapshot());
            Self.Tell(RequeueInterrupted.Instance);
            PublishGauges();
            Timers.StartPeriodicTimer(nameof(WatchStore), WatchStore.Instance, TimeSpan.Zero, TimeSpan.FromSeconds(10));
            Timers.StartPeriodicTimer(nameof(SweepPackages), SweepPackages.Instance, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10));
        });
        // Requests come from this node (the job API) or another coordinator's; checkpoint news from a checkpoint node.
        Command<object>(m => m is SubmitJob or CancelJob or GetJob or ListJobs or GetCheckpoints or GetWorkers or GetJobMetrics or GetJobLogs or RequestTrace or GetTrace
                             && !Senders.FromRole(Context.System, Sender, "coordinator"),
            m => _log.Warning("refused {0} from {1}: not a coordinator of this cluster", m.GetType().Name, Sender.Path));
        Command<object>(m => m is CheckpointProtocol.CheckpointsChanged or CheckpointProtocol.CheckpointWriteFailed
                             && !Senders.FromRole(Context.System, Sender, CheckpointStoreLocator.Role),
            m => _log.Warning("refused {0} from {1}: not a checkpoint node of this cluster", m.GetType().Name, Sender.Path));
        Command<SweepPackages>(_ => SweepUnreferencedPackages());
        Command<SaveSnapshotSuccess>(m =>
        {
            _log.Info("saved a snapshot of {0} job(s) at journal position {1}", _book.BySequence.Count, m.Metadata.SequenceNr);
            // The newest two are kept: a restart falls back to the older one if the newest cannot be read.
            DeleteSnapshots(new SnapshotSelectionCriteria(m.Metadata.SequenceNr - 1 - _settings.SnapshotEvery));
        });
        Command<SaveSnapshotFailure>(m => _log.Warning("could not save a snapshot at journal position {0}: {1}; a restart replays the events after the last one",
            m.Metadata.SequenceNr, m.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(m => _log.Warning("could not delete old snapshots: {0}", m.Cause.Message));

        Command<RequeueInterrupted>(_ => RequeueInterruptedJobs());
        Command<SubmitJob>(Submit);
        Command<GetJob>(m => Sender.Tell(_book.Find(m.Id) is { } job ? Status(job) : new JobNotFound(m.Id)));
        Command<ListJobs>(_ => Sender.Tell(new JobList(_book.Jobs.Select(j => new JobSummary(j.Id, j.Name, j.State.ToString())).ToList())));
        Command<GetCheckpoints>(m =>
        {
            if (_book.Find(m.Id) is not { } job) { Sender.Tell(new JobNotFound(m.Id)); return; }
            // The store verifies the files now (a checkpoint damaged on disk shows as unverified); without one, the last known list.
            if (CheckpointStoreLocator.Resolve(Context.System) is { } store) store.Forward(m);
            else Sender.Tell(new CheckpointList(job.Id, _checkpoints.GetValueOrDefault(job.Id, [])));
        });
        Command<GetJobMetrics>(m =>
        {
            if (_book.Find(m.Id) is null) Sender.Tell(new JobNotFound(m.Id));
            else _metrics.Forward(m);
        });
        Command<RequestTrace>(m =>
        {
            if (_book.Find(m.Id) is not { } job) { Sender.Tell(new JobNotFound(m.Id)); return; }
            if (Tracing.TraceWindow.Check(job, m.From, m.To) is { } refused) { Sender.Tell(new TraceRefused(m.Id, refused.Field, refused.Reason, refused.Kind)); return; }
            if (!_runners.TryGetValue(m.Id, out var run)) { Sender.Tell(new TraceRefused(m.Id, "", $"job {m.Id} is between generations; try again in a few seconds", "later")); return; }
            var traceId = Guid.NewGuid().ToString("N")[..12];
            var started = new Tracing.TraceRecorder.Started(m.Id, traceId, m.From, m.To, run.Nodes);
            _traces.Tell(started);
            run.Runner.Tell(new RunnerMessages.Trace(m.Id, traceId, m.From, m.To));
            JobNote(m.Id, LogLevel.InfoLevel, $"tracing steps {m.From}-{m.To} (trace {traceId})");
            Sender.Tell(new TraceResult(m.Id, traceId, m.From, m.To, run.Nodes.Select((n, r) => new TraceRank(r, n, false)).ToList(), []));
        });
        Command<GetTrace>(m =>
        {
            if (_book.Find(m.Id) is null) Sender.Tell(new JobNotFound(m.Id));
            else _traces.Forward(m);
        });
        Command<GetJobLogs>(m =>
        {
            if (_book.Find(m.Id) is null) Sender.Tell(new JobNotFound(m.Id));
            else _jobLogs.Forward(m);
        });
        Command<WatchStore>(_ => CheckpointStoreLocator.Resolve(Context.System)?.Tell(new CheckpointProtocol.WatchCheckpoints()));
        Command<CheckpointProtocol.CheckpointsChanged>(m =>
        {
            _checkpoints[m.JobId] = m.Checkpoints;
            // Held-out metrics into the job's history, which outlives the checkpoints that the keep policy deletes.
            var evaluated = MetricsHistory.EvaluationsOf(m.Checkpoints);
            if (evaluated.Count > 0) _metrics.Tell(new MetricsRecorder.RecordEvaluations(m.JobId, evaluated));
            if (_checkpointErrors.TryGetValue(m.JobId, out var error) && m.Checkpoints.Any(c => c.Verified && c.Step > error.Step))
                _checkpointErrors.Remove(m.JobId);   // a later checkpoint was written after all
        });
        Command<CheckpointProtocol.CheckpointWriteFailed>(m =>
        {
            var message = $"checkpoint at step {m.Step} failed: {m.Reason}; training goes on, and a recovery would resume from " +
                (m.LatestGood < 0 ? "the start (no checkpoint yet)" : $"the checkpoint at step {m.LatestGood}");
            _checkpointErrors[m.JobId] = (m.Step, message);
            JobNote(m.JobId, LogLevel.WarningLevel, message);
        });
        Command<GetWorkers>(_ => Sender.Tell(new WorkerList(_workers.Select(w => new WorkerView(
            w.Node, w.Reachable ? (w.RunningJob is null && !BusyNodes().Contains(w.Node) ? "idle" : "busy") : "unreachable", w.Devices,
            w.RunningJob ?? _runners.FirstOrDefault(r => r.Value.Nodes.Contains(w.Node)).Key)).ToList())));
        Command<CancelJob>(Cancel);
        Command<WorkersChanged>(m => { _workers = m.Workers; Schedule(); });
        Command<RunnerMessages.Progress>(m =>
        {
            var p = m.Report;
            _book = _book.WithProgress(m.JobId, new JobProgress(p.Epoch, p.Epochs, p.Step, p.TotalSteps, p.Loss, p.SamplesPerSecond, m.Workers));
            NodeMetrics.JobStep.WithLabels(m.JobId).Set(p.Step);
            NodeMetrics.JobSamplesPerSecond.WithLabels(m.JobId).Set(m.Workers.Sum(w => w.SamplesPerSecond));
            _metrics.Tell(new MetricsRecorder.Record(m.JobId, new MetricsPoint(p.Step, p.Epoch, p.Loss, p.LearningRate,
                m.Workers.Sum(w => w.SamplesPerSecond), p.CommunicationShare, Now(), m.Workers)));
        });
        Command<RunnerMessages.Completed>(m =>
        {
            if (_book.Find(m.JobId) is not { State: JobState.Running }) return;
            var r = m.Result;
            Persist(new JobCompleted(m.JobId, r.Accuracy ?? double.NaN, r.Loss ?? double.NaN, r.Steps, r.Epochs, r.SamplesPerSecond, r.WeightsPath ?? "", Now(), r.Metrics), e =>
            {
                Applied(e);
                JobNote(e.Id, LogLevel.InfoLevel, $"completed, held-out " +
                    string.Join(", ", (e.Metrics ?? new Dictionary<string, double> { ["accuracy"] = e.Accuracy }).Select(kv => $"{kv.Key} {kv.Value:F4}")) + $", {e.Steps} steps");
            });
        });
        Command<RunnerMessages.Failed>(m => FailJob(m.JobId, m.Error));
        Command<RunnerMessages.Interrupted>(m =>
        {
            if (_book.Find(m.JobId) is not { State: JobState.Running } job) return;
            if (job.Failures >= job.MaxFailures)
            {
                FailJob(m.JobId, job.MaxFailures == 0 ? m.Reason
                    : $"{m.Reason} (after {job.Failures} {(job.Failures == 1 ? "recovery" : "recoveries")}; maxFailures is {job.MaxFailures})");
                return;
            }
            Persist(new JobRecovering(m.JobId, m.Reason, Now()), e =>
            {
                Applied(e);
                JobNote(e.Id, LogLevel.WarningLevel, $"recovering ({job.Failures + 1} of at most {job.MaxFailures}): {e.Reason}");
                Schedule();
            });
        });
        Command<RunnerMessages.Finished>(m => { Release(m.JobId); Schedule(); });
        Command<Terminated>(t =>
        {
            // A runner that stops without Finished has crashed: its job cannot go on, and its nodes are released.
            var entry = _runners.FirstOrDefault(r => r.Value.Runner.Equals(t.ActorRef));
            if (entry.Key is null) return;
            FailJob(entry.Key, "the job runner stopped unexpectedly (see the coordinator's log)");
            Release(entry.Key);
            Schedule();
        });
    }

    protected override void PreStart()
    {
        base.PreStart();
        Context.ActorOf(WorkerRegistry.Props(_settings), "worker-registry");
        _metrics = Context.ActorOf(MetricsRecorder.Props(_metricsDir, _tensorBoardDir), "metrics");
        _jobLogs = Context.ActorOf(JobLogRecorder.Props(_jobLogsDir), "job-logs");
        _traces = Context.ActorOf(Tracing.TraceRecorder.Props(), "traces");
    }

    /// <summary>A line for the node's log and for the job's own (<c>orchestrator logs</c>), written as the job's runner (rank -1).</summary>
    private void JobNote(string jobId, LogLevel level, string text)
    {
        JobLogRecorder.Note(Context.System, _log, _jobLogs, jobId, level, text);
    }

    // A runner that throws is stopped, not restarted: restarting would start the job's training a second time.
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(ex =>
        Context.Sender.Path.Name is "worker-registry" or "metrics" ? Directive.Restart : Directive.Stop);

    /// <summary>Applies an event just written, and saves a snapshot when one is due.</summary>
    private void Applied(IOrchestratorMessage e)
    {
        _book = _book.Apply(e);
        SnapshotIfDue();
        if (e is JobRecovering) NodeMetrics.Recoveries.Inc();
        if (e is JobCompleted or JobFailed or JobCancelled or JobRecovering or JobRequeued)
            NodeMetrics.ForgetJob(e switch { JobCompleted c => c.Id, JobFailed f => f.Id, JobCancelled x => x.Id, JobRecovering r => r.Id, JobRequeued q => q.Id, _ => "" });
        PublishGauges();
    }

    /// <summary>Jobs by state and the queue's length, for the node's Prometheus metrics (a count over the book: events are rare).</summary>
    private void PublishGauges()
    {
        var counts = _book.Jobs.GroupBy(j => j.State).ToDictionary(g => g.Key, g => g.Count());
        foreach (var state in Enum.GetValues<JobState>()) NodeMetrics.JobsByState.WithLabels(state.ToString()).Set(counts.GetValueOrDefault(state));
        NodeMetrics.QueueLength.Set(_book.Waiting.Count());
    }

    /// <summary>Every snapshot-every events (called in a persist handler, where LastSequenceNr is the event's own position).</summary>
    private void SnapshotIfDue()
    {
        if (LastSequenceNr % _settings.SnapshotEvery == 0) SaveSnapshot(_book.ToSnapshot());
    }

    private void Submit(SubmitJob submit)
    {
        // A retry of a submit that was recorded (its answer was lost or came too late, and the client asked again with
        // the same key): the job it made, not a second one.
        if (_book.FindSubmission(submit.SubmissionKey) is { } recorded)
        {
            Sender.Tell(new JobAccepted(recorded.Id, recorded.Name, recorded.State.ToString()));
            return;
        }
        JobSpec spec;
        try
        {
            // The structure only: the coordinator never loads a workload. The client checks data and arguments
            // where it runs; a worker that cannot load them fails the job at once with the reason.
            spec = JobSpecParser.Parse(submit.SpecJson);
        }
        catch (JobSpecException ex)
        {
            Sender.Tell(new JobRejected(ex.Field, ex.Problem));
            return;
        }
        if (_book.Waiting.Count() >= _settings.MaxQueuedJobs)
        {
            Sender.Tell(new QueueFull(_settings.MaxQueuedJobs));
            return;
        }
        // An uploaded package must be here before a job may name it (a local file check).
        if (spec.Package?.Source is { } source && source.StartsWith(JobSpecParser.PackageHashPrefix, StringComparison.Ordinal)
            && !new PackageStore(_packages.Dir, _packages.MaxBytes).Has(source[JobSpecParser.PackageHashPrefix.Length..]))
        {
            Sender.Tell(new JobRejected("workload.package", $"no package {source} on the coordinator: upload it first (PUT /api/v1/packages/<sha256>; orchestrator submit does)"));
            return;
        }
        var replyTo = Sender;
        long sequence = _book.LastSequence + 1;
        _submitting = replyTo;
        Persist(new JobSubmitted(JobBook.IdFor(spec.Name, sequence), sequence, submit.SpecJson, Now(), submit.SubmissionKey), e =>
        {
            _submitting = null;
            _book = _book.Apply(e, spec);
            SnapshotIfDue();
            JobNote(e.Id, LogLevel.InfoLevel, $"accepted ({spec.WorldSize} device(s) on {spec.Workers} worker(s))");
            replyTo.Tell(new JobAccepted(e.Id, spec.Name, JobState.Queued.ToString()));
            Schedule();
        });
    }

    /// <summary>
    /// A journal write failed: the submitter waiting for it hears that nothing was recorded, the guard hears
    /// why, and Akka.Persistence then stops this actor (its state may be behind the journal's); the guard
    /// starts it again after a backoff, and it recovers from the journal.
    /// </summary>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        var reason = $"the journal could not record {(@event as IOrchestratorMessage)?.GetType().Name ?? "an event"}: {cause.Message}";
        _submitting?.Tell(new JobManagerUnavailable(reason + "; nothing was recorded", 1));
        Context.Parent.Tell(new JobManagerGuard.Failed(reason));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    private void Cancel(CancelJob cancel)
    {
        if (_book.Find(cancel.Id) is not { } job) { Sender.Tell(new JobNotFound(cancel.Id)); return; }
        if (!job.IsActive) { Sender.Tell(new CancelResult(job.Id, job.State.ToString(), false)); return; }
        var replyTo = Sender;
        Persist(new JobCancelled(job.Id, Now()), e =>
        {
            Applied(e);
            if (_runners.TryGetValue(e.Id, out var run)) run.Runner.Tell(new RunnerMessages.Stop(e.Id));
            JobNote(e.Id, LogLevel.InfoLevel, "cancelled");
            replyTo.Tell(new CancelResult(e.Id, JobState.Cancelled.ToString(), true));
            Schedule();
        });
    }

    private void FailJob(string jobId, string error)
    {
        if (_book.Find(jobId) is not { IsActive: true }) return;
        Persist(new JobFailed(jobId, error, Now()), e =>
        {
            Applied(e);
            JobNote(e.Id, LogLevel.ErrorLevel, $"failed: {e.Error}");
        });
    }

    private void RequeueInterruptedJobs()
    {
        _requeueDone = true;
        var requeued = _book.Jobs.Where(j => j.State is JobState.Running or JobState.Recovering)
            .Select(j => new JobRequeued(j.Id, "the coordinator restarted while the job ran; it goes on from its latest checkpoint", Now()))
            .ToList();
        if (requeued.Count == 0) { Schedule(); return; }
        // Schedule from the last handler (not DeferAsync: a Persist inside a DeferAsync handler left the actor stashing forever).
        var last = requeued[^1];
        PersistAll(requeued, e =>
        {
            Applied(e);
            JobNote(e.Id, LogLevel.WarningLevel, "requeued after a coordinator restart");
            if (ReferenceEquals(e, last)) Schedule();
        });
    }

    /// <summary>Starts waiting jobs (recovering ones first, then the queue, first in first out) while the head fits.</summary>
    private void Schedule()
    {
        // Not before the jobs that ran when the coordinator stopped are back in the queue: a worker's news could
        // otherwise start a queued job ahead of them, on workers that still run their old generation.
        if (!IsRecoveryFinished || !_requeueDone) return;
        var head = _book.Waiting.FirstOrDefault();
        if (head is null) return;
        // A recovering job whose previous generation is still stopping holds its place until it has stopped.
        if (_runners.ContainsKey(head.Id)) return;
        if (GangScheduler.Decide(head, _workers, BusyNodes()) is not ScheduleDecision.Start start) return;

        var nodes = start.Workers.Select(w => w.Node).ToImmutableList();
        int generation = head.NextGeneration;
        Persist(new JobStarted(head.Id, nodes, Now()), e =>
        {
            Applied(e);
            // The generation is in the journal before any worker hears of it, so a coordinator killed in
            // between starts the next one: a ring generation is never used twice.
            var runner = Context.ActorOf(JobRunner.Props(head.Id, head.SpecJson, generation, start.Workers, _settings, _jobLogs, _traces),
                $"runner-{Uri.EscapeDataString(head.Id)}-g{generation}");
            Context.Watch(runner);
            _runners[head.Id] = (runner, nodes);
            JobNote(e.Id, LogLevel.InfoLevel, $"generation {generation} started on {string.Join(", ", e.Workers)}");
            Schedule();
        });
    }

    private void Release(string jobId)
    {
        if (!_runners.Remove(jobId, out var run)) return;
        Context.Unwatch(run.Runner);
    }

    private HashSet<string> BusyNodes() => _runners.Values.SelectMany(r => r.Nodes).ToHashSet(StringComparer.Ordinal);

    private JobStatus Status(JobRecord job)
    {
        string? message = null;
        if (job.State is JobState.Queued or JobState.Recovering)
        {
            int ahead = _book.Waiting.TakeWhile(j => j.Id != job.Id).Count();
            message = ahead > 0
                ? GangScheduler.Behind(ahead)
                : _runners.ContainsKey(job.Id) ? "stopping the previous generation's workers"
                : GangScheduler.Decide(job, _workers, BusyNodes()) is ScheduleDecision.Wait wait ? wait.Reason : "starting";
            if (job.Interruption is { } why)
                message = job.State == JobState.Recovering
                    ? $"recovering (failure {job.Failures} of at most {job.MaxFailures}) after: {why}; {message}"
                    : $"{why}; {message}";
        }
        // A failed checkpoint write stays visible after the job ended: its checkpoints are not what the schedule promised.
        else if (_checkpointErrors.TryGetValue(job.Id, out var checkpointError)) message = checkpointError.Message;
        var checkpoints = _checkpoints.GetValueOrDefault(job.Id, []);
        var latest = checkpoints.LastOrDefault(c => c.Verified);
        var evaluated = checkpoints.Where(c => c.Verified && c.Metrics is not null).ToList();
        var best = CheckpointRanking.Order(evaluated, c => c.RankMetric is { } m && c.Metrics!.TryGetValue(m, out var v) ? v : null,
            evaluated.LastOrDefault()?.HigherIsBetter ?? true, c => c.Step).FirstOrDefault();
        var p = job.Progress;
        bool completed = job.State == JobState.Completed;
        return new JobStatus(
            job.Id, job.Name, job.State.ToString(),
            Epoch: p?.Epoch ?? (completed ? job.Epochs : 0), Epochs: job.Epochs,
            Step: p?.Step ?? job.Steps, TotalSteps: p?.TotalSteps ?? (completed ? job.Steps : null),
            Loss: completed ? job.FinalLoss : p?.Loss, SamplesPerSecond: p?.SamplesPerSecond,
            Workers: job.AssignedNodes, Failures: job.Failures, Error: job.Error,
            LatestCheckpoint: latest, BestCheckpoint: best,
            Weights: job.Weights, Accuracy: job.Accuracy, Message: message, DevicesRequested: job.DevicesRequested,
            SubmittedAt: job.SubmittedAt.ToString("O"), StartedAt: job.StartedAt?.ToString("O"), EndedAt: job.EndedAt?.ToString("O"),
            WorkerStats: p?.Workers ?? [], Metrics: job.Metrics, Workload: job.Model,
            TensorBoard: _tensorBoardDir is null ? null : MetricsRecorder.TensorBoardFolder(_tensorBoardDir, job.Id));
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Removes the packages no job refers to any more (<see cref="PackageRetention"/>), on the file system off this mailbox.</summary>
    private void SweepUnreferencedPackages()
    {
        var (book, settings, log) = (_book, _packages, _log);
        Task.Run(() =>
        {
            var store = new PackageStore(settings.Dir, settings.MaxBytes);
            foreach (var sha in PackageRetention.Expired(store.List(), book, DateTimeOffset.UtcNow, settings.Retention))
            {
                store.Delete(sha);
                log.Info("package sha256:{0} removed: no job has referred to it for {1}", sha, settings.Retention);
            }
        });
    }

    private sealed record SweepPackages
    {
        public static readonly SweepPackages Instance = new();
    }

    private sealed record WatchStore
    {
        public static readonly WatchStore Instance = new();
    }

    private sealed record RequeueInterrupted
    {
        public static readonly RequeueInterrupted Instance = new();
    }
}
