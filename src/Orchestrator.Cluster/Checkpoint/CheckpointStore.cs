using Akka.Actor;
using Akka.Event;
using Orchestrator.Cluster.Membership;
using Orchestrator.Cluster.Metrics;
using Orchestrator.Core.Jobs;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using Orchestrator.Training.Checkpoints;
using Orchestrator.Training.Workloads;
using static Orchestrator.Core.Protocol.CheckpointProtocol;

namespace Orchestrator.Cluster.Checkpoint;

/// <summary>
/// The checkpoint actor (role <c>checkpoint</c>, at <c>/user/checkpoint-store</c>): receives rank 0's
/// snapshots in chunks and commits them to disk (<see cref="CheckpointFolder"/>), evaluates each on the
/// held-out split, applies the job's retention, sends checkpoints to the trainers of a resumed job,
/// and tells its watchers (the job manager) what changed. File work runs on one queue and evaluation
/// on another, both off the mailbox, so the actor keeps answering while a write or an evaluation runs.
/// </summary>
public sealed class CheckpointStore : ReceiveActor, IWithTimers
{
    public const string Name = "checkpoint-store";

    private readonly CheckpointSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, Incoming> _incoming = new();
    private readonly Dictionary<string, (int Generation, Address? Node)> _uploaders = new();
    private readonly HashSet<IActorRef> _watchers = [];
    private readonly SnapshotEvaluator _evaluator;
    private Task _disk = Task.CompletedTask;
    private Task _evaluation = Task.CompletedTask;

    private sealed record Incoming(SnapshotAssembly Assembly, IActorRef From, DateTime LastHeard);
    private sealed record Written(SnapshotOffer Offer, JobSpec Spec, CheckpointInfo Info, IActorRef From);
    private sealed record WriteFailed(SnapshotOffer Offer, string Reason, IActorRef From, long LatestGood = -1);
    private sealed record Evaluated(string JobId, JobSpec Spec);
    private sealed record Publish(string JobId, IReadOnlyList<CheckpointInfo> Checkpoints);
    private sealed record SendSnapshot(FetchCheckpoint Request, IActorRef To, TrainingSnapshot Snapshot);
    private sealed record Sweep;
    private sealed record Reply(IActorRef To, object Message);

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>
    /// An uploaded package for evaluation: from this node's cache, else from the package store of a
    /// coordinator on this node (the usual place of the checkpoint role), verified into the cache.
    /// </summary>
    private static string? LocalPackage(JobSpec job, PackageSettings packages)
    {
        if (job.Package?.Source is not { } source || !source.StartsWith(JobSpecParser.PackageHashPrefix, StringComparison.Ordinal)) return null;
        var sha = source[JobSpecParser.PackageHashPrefix.Length..];
        var cache = new PackageCache(packages.CacheDir);
        if (cache.TryGet(sha) is { } folder) return folder;
        var store = new Packages.PackageStore(packages.Dir, packages.MaxBytes);
        if (!store.Has(sha)) throw new WorkloadLoadException($"package {source} is not on this node: run the checkpoint role beside a coordinator to evaluate package workloads");
        return cache.Install(sha, File.ReadAllBytes(store.PathOf(sha)));
    }

    public static Props Props(CheckpointSettings settings, PackageSettings packages) => Akka.Actor.Props.Create(() => new CheckpointStore(settings, packages));

    public CheckpointStore(CheckpointSettings settings, PackageSettings packages)
    {
        _settings = settings;
        _evaluator = new SnapshotEvaluator(job => LoadedWorkload.Load(job, LocalPackage(job, packages)));
        // Who may ask what: uploads only from a job's current rank 0 (named by its runner), downloads by workers,
        // the rest by coordinators (a node's own actors always).
        Receive<object>(m => Refused(m) is { } role && !Senders.FromRole(Context.System, Sender, role),
            m => _log.Warning("refused {0} from {1}: needs a member with the {2} role", m.GetType().Name, Sender.Path, Refused(m)!));
        Receive<UploaderFor>(m => _uploaders[m.JobId] = (m.Generation, Senders.ParseNode(m.Node)));
        Receive<SnapshotOffer>(OnOffer);
        Receive<SnapshotChunk>(OnChunk);
        Receive<Written>(OnWritten);
        Receive<WriteFailed>(f =>
        {
            _log.Warning("job {0}: checkpoint at step {1} not written: {2}", f.Offer.JobId, f.Offer.Step, f.Reason);
            f.From.Tell(new TransferDone(f.Offer.TransferId, false, f.Reason));
            foreach (var w in _watchers) w.Tell(new CheckpointWriteFailed(f.Offer.JobId, f.Offer.Step, f.Reason, f.LatestGood));
        });
        Receive<Evaluated>(e => OnDisk(() =>
        {
            var root = JobRoot(e.JobId);
            foreach (var step in CheckpointFolder.ApplyRetention(root, e.Spec.Checkpoint.Keep))
                _log.Info("job {0}: checkpoint at step {1} removed by retention (keep {2} best by {3} plus the newest)",
                    e.JobId, step, e.Spec.Checkpoint.Keep, e.Spec.Checkpoint.Metric);
            return new Publish(e.JobId, CheckpointFolder.List(root));
        }, Self));
        Receive<Publish>(p =>
        {
            var message = new CheckpointsChanged(p.JobId, Views(p.Checkpoints));
            foreach (var w in _watchers) w.Tell(message);
        });
        Receive<WatchCheckpoints>(_ =>
        {
            if (!_watchers.Add(Sender)) return;   // watchers repeat the request until they are known; only the first one costs a listing
            Context.Watch(Sender);
            var watcher = Sender;
            var self = Self;   // the sender it names: the job manager takes checkpoint news only from a checkpoint actor
            OnDisk(() =>
            {
                // The watcher (a job manager that just started) learns every job's checkpoints.
                if (!Directory.Exists(_settings.Dir)) return 0;
                foreach (var job in Directory.EnumerateDirectories(_settings.Dir))
                    watcher.Tell(new CheckpointsChanged(Path.GetFileName(job), Views(CheckpointFolder.List(job))), self);
                return 0;
            }, ActorRefs.Nobody);
        });
        Receive<Terminated>(t => _watchers.Remove(t.ActorRef));
        Receive<JobProtocol.GetCheckpoints>(m =>
        {
            if (!JobIds.IsValid(m.Id)) { Sender.Tell(new JobProtocol.CheckpointList(m.Id, [])); return; }
            OnDisk(() => new JobProtocol.CheckpointList(m.Id, Views(CheckpointFolder.List(JobRoot(m.Id)))), Sender);
        });
        Receive<GetLatestCheckpoint>(m =>
        {
            if (!JobIds.IsValid(m.JobId)) { Sender.Tell(new LatestCheckpoint(m.JobId, -1, 0, "", "")); return; }
            OnDisk(() => Latest(m.JobId), Sender);
        });
        Receive<FetchCheckpoint>(OnFetch);
        Receive<SendSnapshot>(s =>
        {
            var (offer, payload) = SnapshotTransfer.Pack(s.Request.TransferId, s.Request.JobId, "", s.Snapshot);
            Context.ActorOf(SnapshotSender.Props(s.To, offer, payload));
        });
        Receive<Reply>(r => r.To.Tell(r.Message));
        Receive<TransferDone>(done =>
        {
            if (!done.Ok) _log.Warning("sending checkpoint (transfer {0}) failed: {1}", done.TransferId, done.Detail);
        });
        Receive<Sweep>(_ =>
        {
            foreach (var (id, stale) in _incoming.Where(p => DateTime.UtcNow - p.Value.LastHeard > SnapshotTransfer.Timeout).ToList())
            {
                _log.Warning("job {0}: snapshot of step {1} abandoned by its sender", stale.Assembly.Offer.JobId, stale.Assembly.Offer.Step);
                _incoming.Remove(id);
            }
        });
    }

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer(nameof(Sweep), new Sweep(), SnapshotTransfer.Timeout);
        var settings = _settings;
        var log = _log;
        OnDisk(() =>
        {
            Directory.CreateDirectory(settings.Dir);
            int removed = Directory.EnumerateDirectories(settings.Dir).Sum(CheckpointFolder.RemoveLeftovers);
            if (removed > 0) log.Info("removed {0} temp file(s) left by an interrupted checkpoint write", removed);
            return 0;
        }, ActorRefs.Nobody);
    }

    /// <summary>
    /// The file and evaluation queues run off the mailbox: a checkpoint being written and an evaluation
    /// using the evaluator finish before the evaluator goes (and before a new store on a restarted actor
    /// system removes temp files). Bounded, so that a stuck disk cannot hold the node's shutdown; then the
    /// evaluator is left to the process's end rather than freed under a running evaluation.
    /// </summary>
    protected override void PostStop()
    {
        var pending = Task.WhenAll(_disk, _evaluation);
        try { pending.Wait(DrainTimeout); }
        catch (AggregateException) { }   // a failed write or evaluation was reported when it failed
        if (pending.IsCompleted) _evaluator.Dispose();
        else _log.Warning("checkpoint work still running {0} s after the checkpoint actor stopped; its evaluator is left unfreed", DrainTimeout.TotalSeconds);
    }

    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    // A job's file is parsed once, at its first snapshot, not at every one.
    private readonly Dictionary<string, (string Json, JobSpec Spec)> _specs = new();

    private JobSpec Spec(string jobId, string json)
    {
        if (_specs.TryGetValue(jobId, out var known) && known.Json == json) return known.Spec;
        var spec = JobSpecParser.Parse(json);
        if (_specs.Count >= 1000) _specs.Clear();   // bounded: a long-lived store sees many jobs
        _specs[jobId] = (json, spec);
        return spec;
    }

    /// <summary>The role a message's sender needs (null: anyone, checked otherwise or harmless).</summary>
    private static string? Refused(object message) => message switch
    {
        UploaderFor or GetLatestCheckpoint or WatchCheckpoints or JobProtocol.GetCheckpoints => "coordinator",
        FetchCheckpoint or SnapshotOffer => "worker",
        _ => null,
    };

    private void OnOffer(SnapshotOffer offer)
    {
        if (!JobIds.IsValid(offer.JobId)) { Sender.Tell(new TransferDone(offer.TransferId, false, $"invalid job id '{offer.JobId}'")); return; }
        var from = Senders.NodeOf(Context.System, Sender);
        if (!_uploaders.TryGetValue(offer.JobId, out var uploader) || uploader.Generation != offer.Generation || !from.Equals(uploader.Node))
        {
            _log.Warning("job {0}: refused a snapshot of step {1} from {2}: not the job's rank 0 of generation {3}", offer.JobId, offer.Step, Sender.Path,
                offer.Generation);
            Sender.Tell(new TransferDone(offer.TransferId, false, $"not the uploader of job {offer.JobId} generation {offer.Generation}"));
            return;
        }
        if (_incoming.Count >= _settings.MaxPendingOffers)
        {
            Sender.Tell(new TransferDone(offer.TransferId, false, $"{_incoming.Count} snapshots are on their way already (orchestrator.checkpoint.max-pending-offers); try later"));
            return;
        }
        try { _incoming[offer.TransferId] = new Incoming(new SnapshotAssembly(offer, _settings.MaxSnapshotBytes), Sender, DateTime.UtcNow); }
        catch (InvalidDataException ex) { Sender.Tell(new TransferDone(offer.TransferId, false, ex.Message)); }
    }

    private void OnChunk(SnapshotChunk chunk)
    {
        if (chunk.TransferId is null || !_incoming.TryGetValue(chunk.TransferId, out var transfer)) return;
        if (!transfer.Assembly.Add(chunk)) return;   // overlapping, repeated or out of range: not acknowledged, not counted
        Sender.Tell(new SnapshotChunkAck(chunk.TransferId, chunk.Offset));
        _incoming[chunk.TransferId] = transfer with { LastHeard = DateTime.UtcNow };
        if (!transfer.Assembly.IsComplete) return;
        _incoming.Remove(chunk.TransferId);

        var offer = transfer.Assembly.Offer;
        JobSpec spec;
        TrainingSnapshot snapshot;
        try
        {
            spec = Spec(offer.JobId, offer.SpecJson);
            snapshot = transfer.Assembly.Build(spec.Name, spec.Model);
        }
        catch (Exception ex) when (ex is JobSpecException or InvalidDataException)
        {
            Self.Tell(new WriteFailed(offer, ex.Message, transfer.From));
            return;
        }
        var root = JobRoot(offer.JobId);
        var from = transfer.From;
        _disk = _disk.ContinueWith(_ =>
            {
                try
                {
                    var started = System.Diagnostics.Stopwatch.GetTimestamp();
                    var written = new Written(offer, spec, CheckpointFolder.Write(root, snapshot), from);
                    NodeMetrics.CheckpointWriteSeconds.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
                    return (object)written;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    return new WriteFailed(offer, ex.Message, from, CheckpointFolder.LatestVerified(root)?.Step ?? -1);
                }
            }, TaskScheduler.Default)
            .PipeTo(Self, failure: ex => new WriteFailed(offer, ex.Message, from));
    }

    private void OnWritten(Written w)
    {
        _log.Info("job {0}: checkpoint at step {1} committed in {2}", w.Offer.JobId, w.Info.Step, w.Info.Folder);
        w.From.Tell(new TransferDone(w.Offer.TransferId, true, w.Info.WeightsPath));
        var root = JobRoot(w.Offer.JobId);
        OnDisk(() => new Publish(w.Offer.JobId, CheckpointFolder.List(root)), Self);

        // Evaluate off the training path and off this mailbox; the result is written beside the checkpoint.
        var evaluator = _evaluator;
        var self = Self;
        var log = _log;
        int threads = _settings.EvalThreads;
        _evaluation = _evaluation.ContinueWith(_ =>
        {
            try
            {
                TorchSharp.torch.set_num_threads(threads);
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                var result = evaluator.Evaluate(w.Spec, w.Info.WeightsPath);
                NodeMetrics.CheckpointEvaluationSeconds.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
                var (metric, higherIsBetter) = CheckpointRanking.Decide(w.Spec.Checkpoint.Metric, result.RankMetric, result.HigherIsBetter);
                if (!result.Values.ContainsKey(metric))
                    log.Warning("job {0}: checkpoint.metric '{1}' is not among the workload's metrics ({2}); checkpoints are not ranked",
                        w.Offer.JobId, metric, string.Join(", ", result.Values.Keys));
                CheckpointFolder.RecordEvaluation(w.Info.Folder, result.Values, metric, higherIsBetter);
                log.Info("job {0}: checkpoint at step {1}: held-out {2}", w.Offer.JobId, w.Info.Step, result.Describe());
            }
            catch (Exception ex)
            {
                // Retention may have removed it already, or the data is gone: the checkpoint stays, unevaluated.
                log.Warning("job {0}: evaluating the checkpoint at step {1} failed: {2}", w.Offer.JobId, w.Info.Step, ex.Message);
            }
            self.Tell(new Evaluated(w.Offer.JobId, w.Spec));
        }, TaskScheduler.Default);
    }

    private void OnFetch(FetchCheckpoint fetch)
    {
        var to = Sender;
        if (!JobIds.IsValid(fetch.JobId)) { to.Tell(new TransferDone(fetch.TransferId, false, $"invalid job id '{fetch.JobId}'")); return; }
        var folder = CheckpointFolder.StepFolder(JobRoot(fetch.JobId), fetch.Step);
        OnDisk(() =>
        {
            try { return (object)new SendSnapshot(fetch, to, CheckpointFolder.Load(folder)); }
            catch (CheckpointInvalidException ex)
            {
                return new Reply(to, new TransferDone(fetch.TransferId, false, $"checkpoint at step {fetch.Step} of job {fetch.JobId} is not valid: {ex.Message}"));
            }
        }, Self);
    }

    private LatestCheckpoint Latest(string jobId)
    {
        var all = CheckpointFolder.List(JobRoot(jobId));
        var latest = all.LastOrDefault(c => c.Verified);
        var skipped = string.Join("; ", all.Where(c => !c.Verified && c.Step > (latest?.Step ?? -1)).Select(c => $"step {c.Step}: {c.Problem}"));
        return latest is null
            ? new LatestCheckpoint(jobId, -1, 0, "", skipped)
            : new LatestCheckpoint(jobId, latest.Step, latest.Epoch, latest.WeightsPath, skipped);
    }

    /// <summary>Runs file work after the work before it, and sends its result to <paramref name="replyTo"/>.</summary>
    private void OnDisk<T>(Func<T> work, IActorRef replyTo)
    {
        var task = _disk.ContinueWith(_ => work(), TaskScheduler.Default);
        _disk = task;
        if (!replyTo.IsNobody()) task.PipeTo(replyTo, failure: ex => new Status.Failure(ex));
        else task.ContinueWith(t => _log.Warning("checkpoint folder work failed: {0}", t.Exception?.GetBaseException().Message),
            TaskContinuationOptions.OnlyOnFaulted);
    }

    private string JobRoot(string jobId) => Path.Combine(_settings.Dir, jobId);

    /// <summary>Job ids come over the network: only plain names become folder names.</summary>
    public static IReadOnlyList<JobProtocol.CheckpointView> Views(IReadOnlyList<CheckpointInfo> checkpoints) =>
        checkpoints.Select(c => new JobProtocol.CheckpointView(c.Step, c.Epoch, c.WeightsPath, c.Evaluation?.Accuracy, c.Evaluation?.Loss, c.Verified,
            c.Evaluation?.AllMetrics, c.Evaluation?.Ranking, c.Evaluation?.HigherIsBetter ?? true)).ToList();
}
