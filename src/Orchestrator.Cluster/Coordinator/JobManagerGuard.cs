using Akka.Actor;
using Akka.Event;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Cluster.Coordinator;

/// <summary>
/// The coordinator singleton: keeps the <see cref="JobManager"/> alive. Akka.Persistence stops a persistent
/// actor whose journal write fails (a full disk); nothing would start it again and every runner would die
/// with it. The guard starts it again after a backoff (1 s, doubling to 30 s; the manager recovers from the
/// journal), and meanwhile answers every request with <see cref="JobManagerUnavailable"/> and the reason,
/// which the job API turns into 503 with that reason instead of a timeout.
/// </summary>
public sealed class JobManagerGuard : ReceiveActor, IWithTimers
{
    /// <summary>From the job manager: why it is about to stop.</summary>
    public sealed record Failed(string Reason);
    private sealed record Restart
    {
        public static readonly Restart Instance = new();
    }

    public static readonly TimeSpan MinBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly Props _manager;
    private readonly TimeSpan _minBackoff;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef _child = ActorRefs.Nobody;
    private string _lastFailure = "the job manager stopped";
    private TimeSpan _backoff;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(CoordinatorSettings settings, PackageSettings packages, string? dataDir = null) =>
        Akka.Actor.Props.Create(() => new JobManagerGuard(JobManager.Props(settings, packages, dataDir)));

    /// <summary>Guards any job manager props, with a first backoff of <paramref name="minBackoff"/> (tests).</summary>
    public static Props PropsFor(Props manager, TimeSpan minBackoff) => Akka.Actor.Props.Create(() => new JobManagerGuard(manager, minBackoff));

    public JobManagerGuard(Props manager) : this(manager, MinBackoff) { }

    public JobManagerGuard(Props manager, TimeSpan minBackoff)
    {
        _manager = manager;
        _minBackoff = _backoff = minBackoff;
        Up();
    }

    protected override void PreStart() => StartManager();

    // Stopped, not restarted in place: a persistent actor that failed a write must recover from the journal.
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    private void StartManager()
    {
        _child = Context.ActorOf(_manager, "job-manager");
        Context.Watch(_child);
    }

    private void Up()
    {
        Receive<Failed>(f => _lastFailure = f.Reason);
        Receive<Healthy>(_ => _backoff = _minBackoff);
        Receive<Terminated>(t =>
        {
            if (!t.ActorRef.Equals(_child)) return;
            _log.Error("the job manager stopped ({0}); starting it again in {1:0.#} s", _lastFailure, _backoff.TotalSeconds);
            Timers.StartSingleTimer(nameof(Restart), Restart.Instance, _backoff);
            Become(Down);
        });
        ReceiveAny(m => _child.Forward(m));
    }

    private void Down()
    {
        var downSince = DateTime.UtcNow;
        Receive<Failed>(f => _lastFailure = f.Reason);
        Receive<Restart>(_ =>
        {
            StartManager();
            // Doubling while it keeps failing; a manager that stays up a while earns the short backoff back.
            var next = _backoff + _backoff;
            _backoff = next > MaxBackoff ? MaxBackoff : next;
            Timers.StartSingleTimer("healthy", Healthy.Instance, TimeSpan.FromSeconds(60));
            Become(Up);
        });
        ReceiveAny(m =>
        {
            if (m is not IOrchestratorMessage) return;
            var left = Math.Max(1, (int)Math.Ceiling((_backoff - (DateTime.UtcNow - downSince)).TotalSeconds));
            Sender.Tell(new JobManagerUnavailable($"the job manager is down: {_lastFailure}", left));
        });
    }

    private sealed record Healthy
    {
        public static readonly Healthy Instance = new();
    }
}
