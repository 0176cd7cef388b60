using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Orchestrator.Cluster.Membership;
using Orchestrator.Cluster.Worker;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.ClusterProtocol;


namespace Orchestrator.Cluster.Coordinator;

/// <summary>A worker node as the coordinator knows it.</summary>
public sealed record RegisteredWorker(string Node, IActorRef Agent, IReadOnlyList<DeviceInfo> Devices, string? RunningJob, bool Reachable)
{
    public int DeviceCount => Devices.Count;
}

/// <summary>The registry's view, sent to its parent whenever anything in it changes.</summary>
public sealed record WorkersChanged(ImmutableList<RegisteredWorker> Workers);

/// <summary>
/// Tracks the worker nodes from cluster events: asks each worker node that comes up for its
/// inventory (again every <c>inventory-retry</c> until it answers), marks workers unreachable and
/// reachable again, and forgets those that are removed or whose agent dies. It decides nothing: the
/// job manager schedules from the views it sends.
/// </summary>
public sealed class WorkerRegistry : ReceiveActor, IWithTimers
{
    public const string WorkerRole = "worker";

    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CoordinatorSettings _settings;
    private readonly HashSet<Address> _pending = [];
    private readonly HashSet<Address> _unreachable = [];
    private ImmutableDictionary<Address, RegisteredWorker> _workers = ImmutableDictionary<Address, RegisteredWorker>.Empty;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(CoordinatorSettings settings) => Akka.Actor.Props.Create(() => new WorkerRegistry(settings));

    public WorkerRegistry(CoordinatorSettings settings)
    {
        _settings = settings;
        Receive<ClusterEvent.MemberUp>(up => { if (up.Member.HasRole(WorkerRole)) Ask(up.Member.Address); });
        Receive<ClusterEvent.UnreachableMember>(m => SetReachable(m.Member.Address, false));
        Receive<ClusterEvent.ReachableMember>(m => SetReachable(m.Member.Address, true));
        Receive<ClusterEvent.MemberRemoved>(m => Forget(m.Member.Address, "removed from the cluster"));
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<AskPending>(_ =>
        {
            foreach (var address in _pending) Inventory(address).Tell(RequestInventory.Instance);
        });
        Receive<WorkerInventory>(OnInventory);
        Receive<Terminated>(t => Forget(t.ActorRef.Path.Address, "its worker agent stopped"));
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        Timers.StartPeriodicTimer(nameof(AskPending), AskPending.Instance, _settings.InventoryRetry);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private ActorSelection Inventory(Address address) =>
        Context.ActorSelection(new RootActorPath(address) / "user" / WorkerAgent.Name);

    private void Ask(Address address)
    {
        if (_workers.ContainsKey(address)) return;
        _pending.Add(address);
        Inventory(address).Tell(RequestInventory.Instance);
    }

    private void OnInventory(WorkerInventory inventory)
    {
        var address = Sender.Path.Address;
        var from = Senders.NodeOf(Context.System, Sender);   // a worker agent on this node (roles coordinator,worker) is at the node's address
        if (!Equals(Senders.ParseNode(inventory.Node), from) || !Senders.IsMemberWithRole(_cluster.State.Members, from, WorkerRole))
        {
            _log.Warning("refused a worker registration for {0} from {1}: only a member with the worker role registers, at its own address",
                inventory.Node, Sender.Path);
            return;
        }
        _pending.Remove(address);
        if (!_workers.ContainsKey(address))
        {
            Context.Watch(Sender);
            _log.Info("worker {0} registered with {1} device(s): {2}", inventory.Node, inventory.Devices.Count,
                string.Join(", ", inventory.Devices.Select(d => $"{d.Type}:{d.Index}")));
        }
        _workers = _workers.SetItem(address, new RegisteredWorker(inventory.Node, Sender, inventory.Devices, inventory.RunningJob,
            !_unreachable.Contains(address)));
        Publish();
    }

    private void SetReachable(Address address, bool reachable)
    {
        if (reachable) _unreachable.Remove(address); else _unreachable.Add(address);
        if (!_workers.TryGetValue(address, out var worker)) return;
        _log.Warning("worker {0} is {1}", worker.Node, reachable ? "reachable again" : "unreachable");
        _workers = _workers.SetItem(address, worker with { Reachable = reachable });
        Publish();
    }

    private void Forget(Address address, string why)
    {
        _pending.Remove(address);
        _unreachable.Remove(address);
        if (!_workers.TryGetValue(address, out var worker)) return;
        _log.Warning("worker {0} left: {1}", worker.Node, why);
        Context.Unwatch(worker.Agent);
        _workers = _workers.Remove(address);
        Publish();
    }

    private void Publish() =>
        Context.Parent.Tell(new WorkersChanged(_workers.Values.OrderBy(w => w.Node, StringComparer.Ordinal).ToImmutableList()));

    private sealed record AskPending
    {
        public static readonly AskPending Instance = new();
    }
}
