using Akka.Actor;
using Akka.Event;
using Orchestrator.Cluster.Membership;
using Orchestrator.Core.Jobs;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.ClusterProtocol;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Worker;

/// <summary>
/// One per worker node, at <c>/user/worker-agent</c>. Answers the coordinator's registry with the
/// node's devices, runs at most one job at a time in a <see cref="Trainer"/> child, relays its
/// reports to the job runner, and stops training when the runner's node is gone (a job must not
/// train on for a coordinator that no longer exists).
/// </summary>
public sealed class WorkerAgent : ReceiveActor
{
    public const string Name = "worker-agent";

    private readonly string _node;
    private readonly IReadOnlyList<DeviceInfo> _devices;
    private readonly string _dataDir;
    private readonly WorkerSettings _settings;
    private readonly PackageSettings _packages;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _registries = [];
    private Running? _running;
    // A newer generation of the running job, waiting for the old trainer to stop (a restarted coordinator, a recovery).
    private (StartTraining Start, IActorRef Runner)? _next;

    private sealed record Running(string JobId, int Generation, IActorRef Runner, IActorRef Trainer);

    public static Props Props(string node, IReadOnlyList<DeviceInfo> devices, string dataDir, WorkerSettings settings, PackageSettings packages) =>
        Akka.Actor.Props.Create(() => new WorkerAgent(node, devices, dataDir, settings, packages));

    public WorkerAgent(string node, IReadOnlyList<DeviceInfo> devices, string dataDir, WorkerSettings settings, PackageSettings packages)
    {
        _node = node;
        _devices = devices;
        _dataDir = dataDir;
        _settings = settings;
        _packages = packages;

        // Orders come only from this node or from a member with the coordinator role.
        Receive<object>(m => m is RequestInventory or StartTraining or StopTraining or BeginTraining or TraceSteps && !Senders.FromRole(Context.System, Sender, "coordinator"),
            order => Context.GetLogger().Warning("refused {0} from {1}: not a coordinator of this cluster", order.GetType().Name, Sender.Path));
        Receive<RequestInventory>(_ =>
        {
            _registries.Add(Sender);
            Sender.Tell(Inventory());
        });
        Receive<StartTraining>(Start);
        Receive<StopTraining>(stop =>
        {
            if (_running is { } r && r.JobId == stop.JobId) r.Trainer.Forward(stop);
            else Sender.Tell(new TrainingStopped(stop.JobId, _node));   // nothing to stop: say so at once
        });
        Receive<BeginTraining>(begin => { if (_running is { } r && r.JobId == begin.JobId && r.Generation == begin.Generation) r.Trainer.Forward(begin); });
        Receive<TraceSteps>(trace => { if (_running is { } r && r.JobId == trace.JobId && r.Generation == trace.Generation) r.Trainer.Forward(trace); });
        // Reports from the running job's trainer (a child of this agent, never another node) go to the runner.
        Receive<CheckpointDigest>(Relay);
        Receive<TrainingStarted>(Relay);
        Receive<TrainingProgress>(Relay);
        Receive<TrainingCompleted>(Relay);
        Receive<TrainingFailed>(Relay);
        Receive<JobLogBatch>(Relay);
        Receive<TraceSpans>(Relay);
        Receive<Terminated>(OnTerminated);
    }

    private void Relay(object report)
    {
        if (_running is { } r && Sender.Equals(r.Trainer)) r.Runner.Tell(report);
    }

    private WorkerInventory Inventory() => new(_node, _devices, _running?.JobId);

    private void Start(StartTraining start)
    {
        if (_running is { } busy)
        {
            if (busy.JobId == start.JobId && start.Generation > busy.Generation)
            {
                // The job was started again (its coordinator restarted, or it recovers): the old generation gives way.
                _log.Info("job {0}: generation {1} replaces generation {2} here; stopping the old one first", start.JobId, start.Generation, busy.Generation);
                _next = (start, Sender);
                busy.Trainer.Tell(new StopTraining(start.JobId));
                return;
            }
            Sender.Tell(new TrainingFailed(start.JobId, _node, $"worker {_node} is still running job {busy.JobId}", Recoverable: true));
            return;
        }
        Launch(start, Sender);
    }

    private void Launch(StartTraining start, IActorRef runner)
    {
        // The id names this job's folder here: one from the network is checked before a path is made of it.
        if (!JobIds.IsValid(start.JobId))
        {
            runner.Tell(new TrainingFailed(start.JobId ?? "", _node, $"the worker rejected the job: invalid job id '{start.JobId}'"));
            return;
        }
        JobSpec spec;
        try { spec = JobSpecParser.Parse(start.SpecJson); }
        catch (JobSpecException ex)
        {
            runner.Tell(new TrainingFailed(start.JobId, _node, $"the worker rejected the job: field '{ex.Field}': {ex.Problem}"));
            return;
        }
        var output = Path.Combine(_dataDir, "jobs", start.JobId);
        // A package comes from the package store of the coordinator that runs the job.
        var packages = new PackageSource(new Training.Workloads.PackageCache(_packages.CacheDir), $"{runner.Path.Address}/user/{Packages.PackageServer.Name}", _packages.MaxBytes);
        var trainer = Context.ActorOf(Trainer.Props(start, spec, _node, output, _settings, packages), Trainer.ActorName(start.JobId, start.Generation));
        Context.Watch(trainer);
        Context.Watch(runner);
        _running = new Running(start.JobId, start.Generation, runner, trainer);
        _log.Info("job {0}: training as rank {1} of {2} (generation {3}{4}) for {5}", start.JobId, start.Rank, start.WorldSize, start.Generation,
            start.ResumeStep >= 0 ? $", from the checkpoint at step {start.ResumeStep}" : "", runner.Path);
        Announce();
    }

    private void OnTerminated(Terminated t)
    {
        if (_running is not { } r) { _registries.Remove(t.ActorRef); return; }
        if (t.ActorRef.Equals(r.Trainer))
        {
            // The compute thread has ended (completed, failed or stopped): the devices are free.
            Context.Unwatch(r.Runner);
            r.Runner.Tell(new TrainingStopped(r.JobId, _node));
            _running = null;
            if (_next is { } next)
            {
                _next = null;
                Launch(next.Start, next.Runner);
            }
            Announce();
        }
        else if (t.ActorRef.Equals(r.Runner))
        {
            _log.Warning("job {0}: its job runner {1} is gone (coordinator stopped or unreachable); stopping training", r.JobId, r.Runner.Path);
            r.Trainer.Tell(new StopTraining(r.JobId));
        }
        _registries.Remove(t.ActorRef);
    }

    /// <summary>Tells every registry that asked about this node that its state changed.</summary>
    private void Announce()
    {
        var inventory = Inventory();
        foreach (var registry in _registries) registry.Tell(inventory);
    }
}
