using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Orchestrator.Cluster.Logs;
using Orchestrator.Cluster.Metrics;
using Orchestrator.Collectives;
using Orchestrator.Collectives.Links;
using Orchestrator.Cluster.Membership;
using Orchestrator.Core.Jobs;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using Orchestrator.Training.Checkpoints;
using Orchestrator.Sdk;
using Orchestrator.Training.Data;
using Orchestrator.Training.Safetensors;
using Orchestrator.Training.Workloads;
using Orchestrator.Training.Devices;
using Orchestrator.Training.Engine;
using static Orchestrator.Core.Protocol.TrainingProtocol;
using static TorchSharp.torch;

namespace Orchestrator.Cluster.Worker;

/// <summary>
/// Trains this node's part of one job: a replica per local device, gradients summed locally, then
/// across workers by the ring all-reduce over the job's link (<c>akka</c> or <c>tcp</c>).
///
/// The compute runs on a thread this actor starts and owns, never on its mailbox, so
/// <see cref="StopTraining"/> and ring messages are handled while a step runs. The thread loads the
/// data and reports <see cref="TrainingStarted"/>; the runner answers with <see cref="BeginTraining"/>
/// once every worker is ready, and only then does the first step run (so no chunk reaches a neighbour
/// that is still loading). Reports go to the parent (the worker agent); the actor stops itself when
/// the compute thread has ended (and, on rank 0, its last checkpoint has been answered for), which is
/// the agent's signal that the devices are free. Checkpoints travel in children of their own:
/// <see cref="SnapshotUploader"/> (rank 0's snapshots to the store) and <see cref="SnapshotDownloader"/>
/// (the one a resumed job starts from).
/// </summary>
public sealed class Trainer : ReceiveActor, IWithTimers
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly TaskCompletionSource<RingAllReduce> _ring = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<IRingMessage> _early = [];
    private long _refusedRingMessages;
    private readonly Address?[] _peerAddresses;
    private readonly StartTraining _start;
    private readonly JobSpec _spec;
    private readonly string _node;
    private readonly WorkerSettings _settings;
    private readonly IRingLinkEnd? _linkEnd;   // the job's link (RingLinks), in a world of more than one
    private readonly TaskCompletionSource<TrainingSnapshot?> _resume = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<string?> _packageFolder = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly PackageSource _packages;
    private readonly IActorRef? _uploader;   // rank 0's SnapshotUploader, where the job has a checkpoint store
    private readonly IActorRef _self;   // for the compute thread, which has no actor context
    private TrainingCompleted? _completedWhenUploaded;
    private RingAllReduce? _engine;
    private volatile IReadOnlyList<string> _endpoints = [];   // the TCP link's endpoints by rank, from BeginTraining
    private readonly JobLogBuffer _jobLog;
    private readonly StepTrace _trace = new();

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>How often the job's log lines written here go to its runner.</summary>
    private static readonly TimeSpan LogFlushInterval = TimeSpan.FromSeconds(1);

    /// <summary>One name per job and ring generation, so that a new generation never collides with an old one still stopping.</summary>
    public static string ActorName(string jobId, int generation) => $"trainer-{Uri.EscapeDataString(jobId)}-g{generation}";

    /// <summary>Training may take at most this long to fetch the checkpoint it resumes from.</summary>
    private static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(60);

    public static Props Props(StartTraining start, JobSpec spec, string node, string outputDir, WorkerSettings settings, PackageSource packages) =>
        Akka.Actor.Props.Create(() => new Trainer(start, spec, node, outputDir, settings, packages));

    public Trainer(StartTraining start, JobSpec spec, string node, string outputDir, WorkerSettings settings, PackageSource packages)
    {
        _packages = packages;
        _start = start;
        _peerAddresses = Senders.ParsePeers(start.Peers);
        // After a recovery with fewer workers than asked for (down to minWorkers), the world is the one formed.
        _spec = spec with { Workers = start.WorldSize };
        _node = node;
        _settings = settings;
        _jobLog = new JobLogBuffer(node, start.Rank);
        var parent = Context.Parent;
        var self = Self;
        _self = self;
        if (start.WorldSize > 1)
        {
            var provider = ((ExtendedActorSystem)Context.System).Provider;
            _linkEnd = RingLinks.Open(spec.AllReduce.Transport, new RingLinkHost(Address.Parse(node).Host ?? "127.0.0.1",
                rank => provider.ResolveActorRef(TrainerPath(start.Peers[rank])), self));
        }
        var endpoint = _linkEnd?.Endpoint ?? "";
        // Made before the compute thread starts, which hands it the snapshots it captures.
        if (start.Rank == 0 && start.CheckpointStore.Length > 0)
            _uploader = Context.ActorOf(SnapshotUploader.Props(Store(), start.JobId, start.SpecJson), "upload");

        Task.Factory.StartNew(() => Train(parent, outputDir, endpoint, _cancel.Token),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .PipeTo(self, self, success: result => (object)result, failure: ex => new ComputeFailed(ex));

        Receive<BeginTraining>(Begin);
        Receive<IRingMessage>(message =>
        {
            // Only from the node of the rank it names, in this ring's peer list (the engine checks the rank's place).
            if (!Senders.IsFromRank(message, Senders.NodeOf(Context.System, Sender), _peerAddresses))
            {
                if (_refusedRingMessages++ == 0)
                    Note(LogLevel.WarningLevel, $"refused a {message.GetType().Name} from {Sender.Path}, which is not the ring member it names (further ones counted)");
                return;
            }
            if (_engine is { } engine) engine.Deliver(message);
            else _early.Add(message);   // a neighbour that began a moment before this worker heard BeginTraining
        });
        Receive<StopTraining>(_ => _cancel.Cancel());
        Receive<FlushJobLog>(_ => FlushLog());
        Receive<TraceSteps>(t =>
        {
            if (t.To - t.From + 1 > StepTrace.MaxSteps || t.From < 1) return;   // the job manager checked; a bound all the same
            if (!_settings.StepTrace)
            {
                Note(LogLevel.WarningLevel, $"not tracing steps {t.From}-{t.To}: orchestrator.worker.step-trace is off on this worker");
                Self.Tell(new TraceFinished(t.TraceId, []));
                return;
            }
            _trace.Request(t.From, t.To, t.TraceId);
            Note(LogLevel.InfoLevel, $"tracing steps {t.From}-{t.To}");
        });
        Receive<TraceFinished>(f =>
        {
            var parts = f.Spans.Select(s => new JobProtocol.TraceSpanView(_start.Rank, s.Name, s.Step, s.StartUs, s.DurationUs, s.Bytes))
                .Chunk(JobProtocol.TraceSpanView.PartLimit).ToList();
            if (parts.Count == 0) parts.Add([]);   // an empty trace still ends with a last part
            for (int i = 0; i < parts.Count; i++) Context.Parent.Tell(new TraceSpans(_start.JobId, _node, f.TraceId, parts[i], Last: i == parts.Count - 1));
        });
        Receive<TrainingCompleted>(done =>
        {
            if (_uploader is null) { Complete(done); return; }
            _completedWhenUploaded = done;   // the last checkpoint may still be on its way
            _uploader.Tell(SnapshotUploader.TellWhenIdle.Instance);
        });
        Receive<SnapshotUploader.Idle>(_ =>
        {
            if (_completedWhenUploaded is { } done) Complete(done);
        });
        Receive<SnapshotUploader.JobNote>(n => Note(n.Level, n.Text));
        Receive<SnapshotDownloader.Downloaded>(d => _resume.TrySetResult(d.Snapshot));
        Receive<SnapshotDownloader.Failed>(f => _resume.TrySetException(new CheckpointInvalidException(f.Reason)));
        Receive<Packages.PackageFetcher.Fetched>(f =>
        {
            Note(LogLevel.InfoLevel, $"package sha256:{f.Sha256} fetched into {f.Folder}");
            _packageFolder.TrySetResult(f.Folder);
        });
        Receive<Packages.PackageFetcher.FetchFailed>(f => _packageFolder.TrySetException(new WorkloadLoadException(f.Reason)));
        Receive<ComputeFailed>(failed =>
        {
            var ex = failed.Exception is AggregateException { InnerException: { } inner } ? inner : failed.Exception;
            if (ex is OperationCanceledException)
                Note(LogLevel.InfoLevel, "training stopped on request");
            else
            {
                if (ex is CollectiveFailedException) NodeMetrics.CollectiveFailures.WithLabels(_spec.AllReduce.Transport).Inc();
                if (ex is not (CollectiveFailedException or ReplicasDivergedException))
                    Context.GetLogger().Error(ex, "job {0}: training failed", _start.JobId);   // the stack trace stays in the node's own log
                Note(LogLevel.ErrorLevel, $"training failed: {Describe(ex)}");
                FlushLog();
                // A lost peer is recoverable (the job goes on from its checkpoint with a new ring); anything else is not.
                parent.Tell(new TrainingFailed(_start.JobId, node, Describe(ex), Recoverable: ex is CollectiveFailedException));
            }
            Context.Stop(Self);
        });
    }

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer(nameof(FlushJobLog), FlushJobLog.Instance, LogFlushInterval);
        PreparePackage();
        if (_start.ResumeStep < 0) { _resume.TrySetResult(null); return; }
        if (_start.CheckpointStore.Length == 0)
        {
            _resume.TrySetException(new CheckpointInvalidException($"the job resumes from step {_start.ResumeStep} but no checkpoint store was given"));
            return;
        }
        Context.ActorOf(SnapshotDownloader.Props(Store(), _start.JobId, _start.ResumeStep, _spec.Name, _spec.Model), "download");
    }

    /// <summary>An uploaded package comes from this node's cache, or is fetched into it from the coordinator first.</summary>
    private void PreparePackage()
    {
        if (_spec.Package?.Source is not { } source || !source.StartsWith(JobSpecParser.PackageHashPrefix, StringComparison.Ordinal))
        {
            _packageFolder.TrySetResult(null);   // a built-in, or a package the workers read from a path
            return;
        }
        var sha = source[JobSpecParser.PackageHashPrefix.Length..];
        if (_packages.Cache.TryGet(sha) is { } cached)
        {
            _packageFolder.TrySetResult(cached);
            return;
        }
        var server = ((ExtendedActorSystem)Context.System).Provider.ResolveActorRef(_packages.ServerPath);
        Context.ActorOf(Packages.PackageFetcher.Props(server, sha, _packages.Cache, _packages.MaxBytes), "package-fetch");
    }

    private IActorRef Store() => ((ExtendedActorSystem)Context.System).Provider.ResolveActorRef(_start.CheckpointStore);

    /// <summary>Training has ended and nothing of it is still on its way: report to the agent and stop (which frees the devices).</summary>
    private void Complete(TrainingCompleted done)
    {
        FlushLog();
        Context.Parent.Tell(done);
        Context.Stop(Self);
    }

    protected override void PostStop()
    {
        NodeMetrics.ForgetJob(_start.JobId);
        FlushLog();   // what the compute thread wrote last (the agent relays it while this job is still its running one)
        _cancel.Cancel();
        _ring.TrySetCanceled();
        _linkEnd?.Dispose();
    }

    /// <summary>Every worker is ready: form this worker's side of the ring and let the compute thread go.</summary>
    private void Begin(BeginTraining begin)
    {
        if (_engine is not null || begin.Generation != _start.Generation) return;
        var ring = new RingTopology(_start.Generation, _start.Rank, _start.Peers);
        if (_linkEnd is null) { _ring.TrySetResult(null!); return; }   // a world of one: no ring, only the go
        var link = _linkEnd.Link(ring);
        var allReduce = _spec.AllReduce;
        var options = new CollectiveOptions(allReduce.BucketBytes, allReduce.EffectiveChunkBytes, allReduce.EffectiveWindow,
            Deadline: _settings.CollectiveDeadline, AbortGrace: TimeSpan.FromSeconds(1),
            CreditBatch: allReduce.EffectiveCreditBatch, Format: WireCodec.Parse(allReduce.Compression), InFlight: allReduce.InFlight);
        _engine = new RingAllReduce(ring, link, options);
        // Each bucket's all-reduce in a traced step (with what it sent: 2(n-1)/n of the bucket's bytes on the wire).
        var trace = _trace;
        var share = ring.SendShare * WireCodec.BytesPerValue(options.Format);
        if (_settings.StepTrace)
            _engine.BucketDone = (bucket, elements, began, ended) =>
            {
                if (trace.Recording) trace.Span($"all-reduce bucket {bucket}", began, ended, (long)(share * elements));
            };
        foreach (var message in _early) _engine.Deliver(message);
        _early.Clear();
        _endpoints = begin.Endpoints;   // before the compute thread is released, which reads it
        _ring.TrySetResult(_engine);
    }

    /// <summary>A line for the node's own log and for the job's (<c>orchestrator logs</c>); from the actor's thread only.</summary>
    private void Note(LogLevel level, string text)
    {
        Context.GetLogger().Job(level, _start.JobId, text);
        _jobLog.Write(JobLogLevels.Name(level), text);
    }

    /// <summary>Sends the job's waiting log lines to the runner, through the agent.</summary>
    private void FlushLog()
    {
        foreach (var batch in _jobLog.TakeAll(_start.JobId)) Context.Parent.Tell(batch, _self);
    }

    private string TrainerPath(string node) => $"{node}/user/{WorkerAgent.Name}/{ActorName(_start.JobId, _start.Generation)}";

    private TrainingCompleted Train(IActorRef parent, string outputDir, string endpoint, CancellationToken cancellation)
    {
        var devices = LocalDevices(_spec.DevicesPerWorker);
        set_num_threads(_settings.Threads > 0 ? _settings.Threads : Environment.ProcessorCount);
        // A workload that cannot be loaded or started fails the job now, with its own message (no ready timeout).
        var packageFolder = _packageFolder.Task.WaitAsync(FetchTimeout, cancellation).GetAwaiter().GetResult();
        using var workload = LoadedWorkload.Load(_spec, packageFolder, _jobLog.Info);
        var resume = _resume.Task.WaitAsync(FetchTimeout, cancellation).GetAwaiter().GetResult();
        cancellation.ThrowIfCancellationRequested();
        _jobLog.Info($"rank {_start.Rank} of {_start.WorldSize} (generation {_start.Generation}): {workload.Description}, " +
            $"{devices.Count} replica(s) on {string.Join(", ", devices.Select(d => d.ToString()).Distinct())}, " +
            (resume is null ? "from the start" : $"resuming from the checkpoint at step {resume.Position.Step}") + "; ready");
        parent.Tell(new TrainingStarted(_start.JobId, _node, endpoint), _self);

        IGradientReducer reducer = NoReduction.Instance;
        if (_start.WorldSize > 1)
        {
            var engine = _ring.Task.WaitAsync(cancellation).GetAwaiter().GetResult();
            _linkEnd!.Connect(engine.Ring, _endpoints, engine, _start.RingKey ?? [], _settings.RingConnectTimeout, cancellation);
            // Each reduction timed and counted (bytes on the wire) for the node's Prometheus metrics: two clock reads and two adds.
            var seconds = NodeMetrics.AllReduceSeconds.WithLabels(_spec.AllReduce.Transport);
            var bytes = NodeMetrics.AllReduceBytes.WithLabels(_spec.AllReduce.Transport);
            var share = engine.Ring.SendShare * WireCodec.BytesPerValue(engine.Options.Format);
            reducer = new RingGradientReducer(engine, cancellation, (began, elements) =>
            {
                seconds.Observe(Stopwatch.GetElapsedTime(began).TotalSeconds);
                bytes.Inc(share * elements);
            });
        }
        else _ring.Task.WaitAsync(cancellation).GetAwaiter().GetResult();   // a world of one still waits for the runner's go

        _jobLog.Info(_start.WorldSize > 1 ? $"ring of {_start.WorldSize} formed over the {_spec.AllReduce.Transport} link; training" : "training");
        var throttle = Stopwatch.StartNew();
        var epoch = -1;
        var steps = NodeMetrics.WorkerSteps.WithLabels(_start.JobId);
        var throughput = NodeMetrics.WorkerSamplesPerSecond.WithLabels(_start.JobId);
        var lastStep = resume?.Position.Step ?? 0;
        var progress = new SynchronousProgress<WorkerProgress>(p =>
        {
            if (p.Step > lastStep) steps.Inc(p.Step - lastStep);
            lastStep = p.Step;
            throughput.Set(p.SamplesPerSecond);
            if (p.Epoch != epoch)
            {
                if (epoch >= 0) _jobLog.Info($"epoch {p.Epoch} of {p.Epochs} under way at step {p.Step} (loss {p.Loss:F4}, {p.SamplesPerSecond:F0} samples/s)");
                epoch = p.Epoch;
            }
            if (throttle.Elapsed < _settings.ProgressInterval && p.Step < p.TotalSteps) return;
            throttle.Restart();
            parent.Tell(new TrainingProtocol.TrainingProgress(_start.JobId, _node, p.Epoch, p.Epochs, p.Step, p.TotalSteps, p.Loss, p.SamplesPerSecond,
                p.CommunicationShare, p.LearningRate), _self);
        });
        Directory.CreateDirectory(outputDir);
        var placement = new WorkerPlacement(_start.Rank, _start.WorldSize, _spec.DevicesPerWorker);
        var weights = _start.Rank == 0 ? Path.Combine(outputDir, "weights.safetensors") : null;
        _trace.Completed = (traceId, spans) => _self.Tell(new TraceFinished(traceId, spans));
        var hooks = new CheckpointHooks(_start.Generation, resume,
            OnSnapshot: _uploader is { } uploader ? snapshot => uploader.Tell(new SnapshotUploader.Upload(snapshot)) : null,
            OnDigest: (step, digest) => parent.Tell(new CheckpointDigest(_start.JobId, _node, step, digest), _self),
            Trace: _settings.StepTrace ? _trace : null);
        var result = DataParallelRun.Run(_spec, workload.Workload, devices, placement, reducer, weights, progress, cancellation, hooks);
        _jobLog.Info($"finished: {result.Steps} steps, {result.SamplesPerSecond:F0} samples/s, communication share {result.CommunicationShare:P0}" +
            (result.Buckets > 0 ? $", {result.BucketsEarly} of {result.Buckets} buckets reduced during backward" : "") +
            (result.Evaluation?.Values is { Count: > 0 } held ? "; held-out " + string.Join(", ", held.Select(kv => $"{kv.Key} {kv.Value:F4}")) : ""));
        _jobLog.Info("memory: " + ProcessMemory.Read().Describe());
        return new TrainingCompleted(_start.JobId, _node, result.Evaluation?.Accuracy, result.Evaluation?.Loss, result.Steps, result.Epochs,
            result.SamplesPerSecond, result.WeightsPath, result.Digest, result.CommunicationShare, result.Evaluation?.Values);
    }

    /// <summary>One device per local replica: GPUs 0..n-1 where the node has them, else n CPU replicas.</summary>
    private IReadOnlyList<Device> LocalDevices(int count)
    {
        var first = DeviceSelector.Resolve(_settings.Device);
        return first.type == TorchSharp.DeviceType.CUDA
            ? Enumerable.Range(0, count).Select(i => new Device(TorchSharp.DeviceType.CUDA, i)).ToArray()
            : Enumerable.Repeat(CPU, count).ToArray();
    }

    /// <summary>The message a job's status shows: what failed and why, without a stack trace.</summary>
    private string Describe(Exception ex) => ex switch
    {
        JobSpecException js => js.Field.Length == 0 ? js.Problem : $"field '{js.Field}': {js.Problem}",
        TimeoutException => $"the checkpoint to resume from (step {_start.ResumeStep}) did not arrive within {FetchTimeout.TotalSeconds:0} s",
        WorkloadArgumentException wa => $"invalid job: field '{wa.Field}': {wa.Problem}",
        CollectiveFailedException or ReplicasDivergedException or CheckpointInvalidException or IdxFormatException or WorkloadLoadException
            or SafetensorsFormatException or IOException or UnauthorizedAccessException or ArgumentException => ex.Message,
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };

    private sealed class NoReduction : IGradientReducer
    {
        public static readonly NoReduction Instance = new();
        public void SumAcrossWorkers(Memory<float> gradients) { }
    }

    private sealed record ComputeFailed(Exception Exception);

    private sealed record TraceFinished(string TraceId, IReadOnlyList<TraceSpan> Spans);

    private sealed record FlushJobLog
    {
        public static readonly FlushJobLog Instance = new();
    }
}

/// <summary>Where a trainer gets an uploaded package: this node's cache, else the package store at <paramref name="ServerPath"/>.</summary>
public sealed record PackageSource(Training.Workloads.PackageCache Cache, string ServerPath, long MaxBytes);
