using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Orchestrator.Core.Jobs;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using Orchestrator.Training.Data;
using Orchestrator.Training.Models;
using static Orchestrator.Core.Protocol.JobEvents;
using static Orchestrator.Core.Protocol.JobProtocol;

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
public sealed class JobManager : ReceivePersistentActor
{
    public const string PersistenceIdValue = "job-manager";

    private readonly CoordinatorSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private JobBook _book = JobBook.Empty;
    private ImmutableList<RegisteredWorker> _workers = [];
    // Nodes held by each job that has a runner (running, or stopping after it ended).
    private readonly Dictionary<string, (IActorRef Runner, ImmutableList<string> Nodes)> _runners = new();

    public override string PersistenceId => PersistenceIdValue;

    public static Props Props(CoordinatorSettings settings) => Akka.Actor.Props.Create(() => new JobManager(settings));

    public JobManager(CoordinatorSettings settings)
    {
        _settings = settings;

        Recover<JobSubmitted>(e => _book = _book.Apply(e));
        Recover<JobStarted>(e => _book = _book.Apply(e));
        Recover<JobCompleted>(e => _book = _book.Apply(e));
        Recover<JobFailed>(e => _book = _book.Apply(e));
        Recover<JobCancelled>(e => _book = _book.Apply(e));
        Recover<JobRequeued>(e => _book = _book.Apply(e));
        Recover<RecoveryCompleted>(_ =>
        {
            _log.Info("job manager recovered {0} job(s), last sequence {1}", _book.BySequence.Count, _book.LastSequence);
            Self.Tell(RequeueInterrupted.Instance);
        });

        Command<RequeueInterrupted>(_ => RequeueInterruptedJobs());
        Command<SubmitJob>(Submit);
        Command<GetJob>(m => Sender.Tell(_book.Find(m.Id) is { } job ? Status(job) : new JobNotFound(m.Id)));
        Command<ListJobs>(_ => Sender.Tell(new JobList(_book.Jobs.Select(j => new JobSummary(j.Id, j.Name, j.State.ToString())).ToList())));
        Command<GetCheckpoints>(m => Sender.Tell(_book.Find(m.Id) is { } job ? new CheckpointList(job.Id, []) : new JobNotFound(m.Id)));
        Command<GetWorkers>(_ => Sender.Tell(new WorkerList(_workers.Select(w => new WorkerView(
            w.Node, w.Reachable ? (w.RunningJob is null && !BusyNodes().Contains(w.Node) ? "idle" : "busy") : "unreachable", w.Devices,
            w.RunningJob ?? _runners.FirstOrDefault(r => r.Value.Nodes.Contains(w.Node)).Key)).ToList())));
        Command<CancelJob>(Cancel);
        Command<WorkersChanged>(m => { _workers = m.Workers; Schedule(); });
        Command<RunnerMessages.Progress>(m =>
        {
            var p = m.Report;
            _book = _book.WithProgress(m.JobId, new JobProgress(p.Epoch, p.Epochs, p.Step, p.TotalSteps, p.Loss, p.SamplesPerSecond, m.Workers));
        });
        Command<RunnerMessages.Completed>(m =>
        {
            if (_book.Find(m.JobId) is not { State: JobState.Running }) return;
            var r = m.Result;
            Persist(new JobCompleted(m.JobId, r.Accuracy ?? double.NaN, r.Loss ?? double.NaN, r.Steps, r.Epochs, r.SamplesPerSecond, r.WeightsPath ?? "", Now()), e =>
            {
                _book = _book.Apply(e);
                _log.Info("job {0}: completed, held-out accuracy {1:F4}, {2} steps", e.Id, e.Accuracy, e.Steps);
            });
        });
        Command<RunnerMessages.Failed>(m => FailJob(m.JobId, m.Error));
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
    }

    // A runner that throws is stopped, not restarted: restarting would start the job's training a second time.
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(ex =>
        Context.Sender.Path.Name == "worker-registry" ? Directive.Restart : Directive.Stop);

    private void Submit(SubmitJob submit)
    {
        JobSpec spec;
        try
        {
            spec = JobSpecParser.Parse(submit.SpecJson, ModelRegistry.Names);
            DatasetLocator.Locate(spec.Dataset);   // the data must exist where the coordinator can see it
        }
        catch (JobSpecException ex)
        {
            Sender.Tell(new JobRejected(ex.Field, ex.Problem));
            return;
        }
        var replyTo = Sender;
        long sequence = _book.LastSequence + 1;
        Persist(new JobSubmitted(JobBook.IdFor(spec.Name, sequence), sequence, submit.SpecJson, Now()), e =>
        {
            _book = _book.Apply(e);
            _log.Info("job {0}: accepted ({1} device(s) on {2} worker(s))", e.Id, spec.WorldSize, spec.Workers);
            replyTo.Tell(new JobAccepted(e.Id, spec.Name, JobState.Queued.ToString()));
            Schedule();
        });
    }

    private void Cancel(CancelJob cancel)
    {
        if (_book.Find(cancel.Id) is not { } job) { Sender.Tell(new JobNotFound(cancel.Id)); return; }
        if (!job.IsActive) { Sender.Tell(new CancelResult(job.Id, job.State.ToString(), false)); return; }
        var replyTo = Sender;
        Persist(new JobCancelled(job.Id, Now()), e =>
        {
            _book = _book.Apply(e);
            if (_runners.TryGetValue(e.Id, out var run)) run.Runner.Tell(new RunnerMessages.Stop(e.Id));
            _log.Info("job {0}: cancelled", e.Id);
            replyTo.Tell(new CancelResult(e.Id, JobState.Cancelled.ToString(), true));
            Schedule();
        });
    }

    private void FailJob(string jobId, string error)
    {
        if (_book.Find(jobId) is not { IsActive: true }) return;
        Persist(new JobFailed(jobId, error, Now()), e =>
        {
            _book = _book.Apply(e);
            _log.Warning("job {0}: failed: {1}", e.Id, e.Error);
        });
    }

    private void RequeueInterruptedJobs()
    {
        var requeued = _book.Jobs.Where(j => j.State is JobState.Running or JobState.Recovering)
            .Select(j => new JobRequeued(j.Id, "the coordinator restarted while the job ran; it starts again from the beginning", Now()))
            .ToList();
        if (requeued.Count == 0) { Schedule(); return; }
        // Schedule from the last handler (not DeferAsync: a Persist inside a DeferAsync handler left the actor stashing forever).
        var last = requeued[^1];
        PersistAll(requeued, e =>
        {
            _book = _book.Apply(e);
            _log.Warning("job {0}: requeued after a coordinator restart", e.Id);
            if (ReferenceEquals(e, last)) Schedule();
        });
    }

    /// <summary>Starts queued jobs, first in first out, while the head of the queue fits.</summary>
    private void Schedule()
    {
        if (!IsRecoveryFinished) return;
        var head = _book.Queue.FirstOrDefault();
        if (head is null) return;
        if (GangScheduler.Decide(head, _workers, BusyNodes()) is not ScheduleDecision.Start start) return;

        var nodes = start.Workers.Select(w => w.Node).ToImmutableList();
        var runner = Context.ActorOf(JobRunner.Props(head.Id, head.SpecJson, start.Workers, _settings), "runner-" + Uri.EscapeDataString(head.Id));
        Context.Watch(runner);
        _runners[head.Id] = (runner, nodes);
        Persist(new JobStarted(head.Id, nodes, Now()), e =>
        {
            _book = _book.Apply(e);
            _log.Info("job {0}: started on {1}", e.Id, string.Join(", ", e.Workers));
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
        if (job.State == JobState.Queued)
        {
            int ahead = _book.Queue.TakeWhile(j => j.Id != job.Id).Count();
            message = ahead > 0
                ? GangScheduler.Behind(ahead)
                : GangScheduler.Decide(job, _workers, BusyNodes()) is ScheduleDecision.Wait wait ? wait.Reason : "starting";
        }
        var p = job.Progress;
        bool completed = job.State == JobState.Completed;
        return new JobStatus(
            job.Id, job.Name, job.State.ToString(),
            Epoch: p?.Epoch ?? (completed ? job.Epochs : 0), Epochs: job.Epochs,
            Step: p?.Step ?? job.Steps, TotalSteps: p?.TotalSteps ?? (completed ? job.Steps : null),
            Loss: completed ? job.FinalLoss : p?.Loss, SamplesPerSecond: p?.SamplesPerSecond,
            Workers: job.AssignedNodes, Failures: job.Failures, Error: job.Error,
            LatestCheckpoint: null, BestCheckpoint: null,
            Weights: job.Weights, Accuracy: job.Accuracy, Message: message, DevicesRequested: job.DevicesRequested,
            SubmittedAt: job.SubmittedAt.ToString("O"), StartedAt: job.StartedAt?.ToString("O"), EndedAt: job.EndedAt?.ToString("O"),
            WorkerStats: p?.Workers ?? []);
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private sealed record RequeueInterrupted
    {
        public static readonly RequeueInterrupted Instance = new();
    }
}
