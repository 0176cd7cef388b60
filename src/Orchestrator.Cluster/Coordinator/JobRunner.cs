using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Coordinator;

/// <summary>Messages between the job manager and its runners; both live on the coordinator, so these never cross the wire.</summary>
public static class RunnerMessages
{
    /// <summary>Rank 0's latest report, and every worker's latest figures.</summary>
    public sealed record Progress(string JobId, TrainingProgress Report, ImmutableList<JobProtocol.WorkerStat> Workers);
    public sealed record Completed(string JobId, TrainingCompleted Result);
    public sealed record Failed(string JobId, string Error);
    /// <summary>Every worker of the job has stopped (or was given up on): its nodes are free.</summary>
    public sealed record Finished(string JobId);
    /// <summary>Manager → runner: the job was cancelled; stop the workers.</summary>
    public sealed record Stop(string JobId);
}

/// <summary>
/// Runs one job on the workers the manager gave it (index = rank): starts training on each, waits
/// until every one has loaded its data (and, on the TCP link, opened its endpoint), then tells all of
/// them to begin with the ring's endpoints. Relays progress, gathers every worker's result and
/// compares their parameter digests (a mismatch fails the job), and when anything goes wrong stops
/// the others. It then waits until every worker has said its compute ended (or <c>stop-timeout</c>
/// passed) before telling the manager that the nodes are free.
/// </summary>
public sealed class JobRunner : ReceiveActor, IWithTimers
{
    private const int Generation = 1;
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(3);
    private readonly string _jobId;
    private readonly ImmutableList<RegisteredWorker> _workers;
    private readonly CoordinatorSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _active = [];
    private readonly Dictionary<int, string> _endpoints = new();
    private readonly Dictionary<int, JobProtocol.WorkerStat> _stats = new();
    private readonly Dictionary<int, TrainingCompleted> _results = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string jobId, string specJson, ImmutableList<RegisteredWorker> workers, CoordinatorSettings settings) =>
        Akka.Actor.Props.Create(() => new JobRunner(jobId, specJson, workers, settings));

    public JobRunner(string jobId, string specJson, ImmutableList<RegisteredWorker> workers, CoordinatorSettings settings)
    {
        _jobId = jobId;
        _workers = workers;
        _settings = settings;
        var peers = workers.Select(w => w.Node).ToList();
        for (int rank = 0; rank < workers.Count; rank++)
        {
            var agent = workers[rank].Agent;
            Context.Watch(agent);
            _active.Add(agent);
            agent.Tell(new StartTraining(jobId, specJson, Generation, rank, workers.Count, peers));
        }
        Timers.StartSingleTimer(nameof(ReadyDeadline), ReadyDeadline.Instance, ReadyTimeout);
        Starting();
    }

    private void Starting()
    {
        Receive<TrainingStarted>(m =>
        {
            if (RankOf(Sender) is not { } rank) return;
            _endpoints[rank] = m.Endpoint;
            _log.Info("job {0}: rank {1} ready on {2}", _jobId, rank, m.Node);
            if (_endpoints.Count < _workers.Count) return;
            Timers.Cancel(nameof(ReadyDeadline));
            var begin = new BeginTraining(_jobId, Generation, Enumerable.Range(0, _workers.Count).Select(r => _endpoints[r]).ToList());
            foreach (var w in _workers) w.Agent.Tell(begin);
            Become(Running);
        });
        Receive<ReadyDeadline>(_ =>
        {
            var missing = Enumerable.Range(0, _workers.Count).Where(r => !_endpoints.ContainsKey(r)).Select(r => $"rank {r} ({_workers[r].Node})");
            FailAndStop($"not every worker was ready within {ReadyTimeout.TotalMinutes:0} min: {string.Join(", ", missing)}");
        });
        CommonFailures();
    }

    private void Running()
    {
        Receive<TrainingProgress>(m =>
        {
            if (RankOf(Sender) is not { } rank) return;
            _stats[rank] = new JobProtocol.WorkerStat(m.Node, rank, m.Step, m.SamplesPerSecond, m.CommunicationShare);
            if (rank == 0) Context.Parent.Tell(new RunnerMessages.Progress(_jobId, m, [.. _stats.Values.OrderBy(s => s.Rank)]));
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
        Receive<TrainingFailed>(m => FailAndStop($"worker {m.Node}: {m.Error}"));
        Receive<TrainingStopped>(m =>
        {
            _active.Remove(Sender);
            // A worker that finished its last step stops while the others still finish theirs: expected.
            if (RankOf(Sender) is { } rank && _results.ContainsKey(rank)) return;
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
        Timers.Cancel(nameof(ReadyDeadline));
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

    private sealed record StopDeadline
    {
        public static readonly StopDeadline Instance = new();
    }
}
