using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Coordinator;

/// <summary>Messages between the job manager and its runners; both live on the coordinator, so these never cross the wire.</summary>
public static class RunnerMessages
{
    public sealed record Progress(string JobId, TrainingProgress Report);
    public sealed record Completed(string JobId, TrainingCompleted Result);
    public sealed record Failed(string JobId, string Error);
    /// <summary>Every worker of the job has stopped (or was given up on): its nodes are free.</summary>
    public sealed record Finished(string JobId);
    /// <summary>Manager → runner: the job was cancelled; stop the workers.</summary>
    public sealed record Stop(string JobId)
    {
    }
}

/// <summary>
/// Runs one job on the workers the manager gave it (index = rank): starts training on each, relays
/// rank 0's progress and result, and when anything goes wrong stops the others. It then waits until
/// every worker has said its compute ended (or <c>stop-timeout</c> passed) before telling the manager
/// that the nodes are free, so that a new job never lands on a node still busy with this one.
/// </summary>
public sealed class JobRunner : ReceiveActor, IWithTimers
{
    private const int Generation = 1;
    private readonly string _jobId;
    private readonly ImmutableList<RegisteredWorker> _workers;
    private readonly CoordinatorSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _active = [];

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string jobId, string specJson, ImmutableList<RegisteredWorker> workers, CoordinatorSettings settings) =>
        Akka.Actor.Props.Create(() => new JobRunner(jobId, specJson, workers, settings));

    public JobRunner(string jobId, string specJson, ImmutableList<RegisteredWorker> workers, CoordinatorSettings settings)
    {
        _jobId = jobId;
        _workers = workers;
        _settings = settings;
        for (int rank = 0; rank < workers.Count; rank++)
        {
            var agent = workers[rank].Agent;
            Context.Watch(agent);
            _active.Add(agent);
            agent.Tell(new StartTraining(jobId, specJson, Generation, rank, workers.Count));
        }
        Running();
    }

    private void Running()
    {
        Receive<TrainingStarted>(m => _log.Info("job {0}: training started on {1}", _jobId, m.Node));
        Receive<TrainingProgress>(m => { if (IsRankZero()) Context.Parent.Tell(new RunnerMessages.Progress(_jobId, m)); });
        Receive<TrainingCompleted>(m =>
        {
            if (!IsRankZero()) return;
            Context.Parent.Tell(new RunnerMessages.Completed(_jobId, m));
            BecomeStopping(sendStop: false);   // the workers end by themselves after the last step
        });
        Receive<TrainingFailed>(m => FailAndStop($"worker {m.Node}: {m.Error}"));
        Receive<TrainingStopped>(m =>
        {
            _active.Remove(Sender);
            FailAndStop($"worker {m.Node} stopped training before the job ended");
        });
        Receive<Terminated>(t =>
        {
            _active.Remove(t.ActorRef);
            FailAndStop($"worker {NodeOf(t.ActorRef)} was lost (its node left the cluster or stopped)");
        });
        Receive<RunnerMessages.Stop>(_ => BecomeStopping(sendStop: true));
    }

    private void FailAndStop(string error)
    {
        _log.Warning("job {0}: {1}; stopping its other workers", _jobId, error);
        Context.Parent.Tell(new RunnerMessages.Failed(_jobId, error));
        BecomeStopping(sendStop: true);
    }

    private void BecomeStopping(bool sendStop)
    {
        if (sendStop) foreach (var agent in _active) agent.Tell(new StopTraining(_jobId));
        Timers.StartSingleTimer(nameof(StopDeadline), StopDeadline.Instance, _settings.StopTimeout);
        Become(Stopping);
        FinishIfAllStopped();
    }

    private void Stopping()
    {
        Receive<TrainingStopped>(_ => { _active.Remove(Sender); FinishIfAllStopped(); });
        Receive<Terminated>(t => { _active.Remove(t.ActorRef); FinishIfAllStopped(); });
        Receive<StopDeadline>(_ =>
        {
            _log.Warning("job {0}: {1} worker(s) did not confirm stopping within {2}; their devices count as free",
                _jobId, _active.Count, _settings.StopTimeout);
            _active.Clear();
            FinishIfAllStopped();
        });
        Receive<RunnerMessages.Stop>(_ => { foreach (var agent in _active) agent.Tell(new StopTraining(_jobId)); });
        ReceiveAny(_ => { });   // late progress and results of a job that is ending
    }

    private void FinishIfAllStopped()
    {
        if (_active.Count > 0) return;
        Context.Parent.Tell(new RunnerMessages.Finished(_jobId));
        Context.Stop(Self);
    }

    private bool IsRankZero() => Sender.Equals(_workers[0].Agent);

    private string NodeOf(IActorRef agent) => _workers.FirstOrDefault(w => w.Agent.Equals(agent))?.Node ?? agent.Path.Address.ToString();

    private sealed record StopDeadline
    {
        public static readonly StopDeadline Instance = new();
    }
}
