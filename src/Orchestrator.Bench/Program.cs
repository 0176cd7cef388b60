using System.Diagnostics;
using System.Globalization;
using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Orchestrator.Collectives;
using Orchestrator.Collectives.Links;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;

// One rank of the all-reduce benchmark. Every rank is a cluster member (so the failure detector
// watches the same connection that carries the chunks) and sums float32 buffers over the ring.
// Usage: orchestrator-bench --rank R --ports P0,P1,.. --tcp-ports T0,T1,.. --transport akka|tcp
//                           --mib 16,64 --reps N [--seconds S] [--warmup-seconds S] [--chunk-kib K] [--window W]
// Rank 0 prints one JSON line per size: median seconds per all-reduce, busbw, unreachable events, peak RSS.
var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--")).ToDictionary(p => p.a[2..], p => args[p.i + 1]);
int rank = int.Parse(options["rank"]);
var ports = options["ports"].Split(',').Select(int.Parse).ToArray();
var tcpPorts = options["tcp-ports"].Split(',').Select(int.Parse).ToArray();
var transport = options["transport"];
var sizes = options["mib"].Split(',').Select(s => int.Parse(s) * 1024 * 1024).ToArray();
int reps = int.Parse(options.GetValueOrDefault("reps", "5"));
double soakSeconds = double.Parse(options.GetValueOrDefault("seconds", "0"), CultureInfo.InvariantCulture);
double warmupSeconds = double.Parse(options.GetValueOrDefault("warmup-seconds", "2"), CultureInfo.InvariantCulture);
int world = ports.Length;

var config = ConfigurationFactory.ParseString($$"""
    akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{ports[rank]}} }
    akka.cluster.seed-nodes = ["akka.tcp://bench@127.0.0.1:{{ports[0]}}"]
    akka.coordinated-shutdown.exit-clr = off
    akka.loglevel = WARNING
    """).WithFallback(OrchestratorSettings.DefaultConfig());
using var system = ActorSystem.Create("bench", config);
var cluster = Cluster.Get(system);
var unreachable = 0;
var watcher = system.ActorOf(Props.Create(() => new UnreachableCounter(() => Interlocked.Increment(ref unreachable))), "watch");
cluster.Subscribe(watcher, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.UnreachableMember));
var up = Stopwatch.StartNew();
while (cluster.State.Members.Count(m => m.Status == MemberStatus.Up) < world)
{
    if (up.Elapsed > TimeSpan.FromSeconds(60)) { Console.Error.WriteLine($"rank {rank}: cluster not formed within 60 s"); return 1; }
    Thread.Sleep(100);
}

var nodes = ports.Select(p => $"akka.tcp://bench@127.0.0.1:{p}").ToArray();
var ring = new RingTopology(1, rank, nodes);
var inbox = new RingEndpoint.Target();
var ringActor = system.ActorOf(RingEndpoint.Props(inbox), "ring");
TcpRingLink? tcp = transport == "tcp" ? new TcpRingLink(IPAddress.Loopback, tcpPorts[rank]) : null;
IRingLink link = tcp ?? (IRingLink)new AkkaRingLink(
    ((ExtendedActorSystem)system).Provider.ResolveActorRef(ActorPath.Parse($"{nodes[ring.Left]}/user/ring")),
    ((ExtendedActorSystem)system).Provider.ResolveActorRef(ActorPath.Parse($"{nodes[ring.Right]}/user/ring")),
    ringActor);
// Chunk size and window default to what the trainers use; the options are for trying others.
var chunk = options.TryGetValue("chunk-kib", out var kib) ? int.Parse(kib) * 1024 : tcp is null ? AkkaRingLink.ChunkBytes : TcpRingLink.ChunkBytes;
var window = options.TryGetValue("window", out var w) ? int.Parse(w) : tcp is null ? 16 : 4;
var engine = new RingAllReduce(ring, link, new CollectiveOptions(sizes.Max(), chunk, window, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(1)));
inbox.Engine = engine;
Thread.Sleep(2000);   // every rank's ring actor exists before the first chunk
tcp?.Connect(ring, $"127.0.0.1:{tcpPorts[ring.Right]}", engine, TimeSpan.FromSeconds(30), CancellationToken.None);

var barrier = new float[1];
foreach (var bytes in sizes)
{
    var data = new float[bytes / sizeof(float)];
    var times = new List<double>();
    var soak = Stopwatch.StartNew();
    int runs = 0;
    // Timed runs start once the JIT has settled: tiered compilation was still optimizing the hot path
    // seconds into a run, and measuring then made a 64 MiB all-reduce look a third slower than it is.
    bool warm = false;
    // Every rank must run the same number of all-reduces, so rank 0 decides when to stop and says so
    // in element 0 of the buffer (the others put 0 there, so the sum is rank 0's word).
    for (bool more = true; more; runs++)
    {
        Array.Fill(data, rank + 1);
        bool last = warm && times.Count >= reps - 1 && soak.Elapsed.TotalSeconds >= soakSeconds;
        data[0] = rank == 0 && !last ? 1 : 0;
        engine.AllReduce(barrier);   // every rank starts the clock together, as gloo's benchmark does with dist.barrier()
        var clock = Stopwatch.StartNew();
        engine.AllReduce(data);
        if (warm) times.Add(clock.Elapsed.TotalSeconds);
        else warm = runs >= 1 && soak.Elapsed.TotalSeconds >= warmupSeconds;
        more = data[0] > 0;
        // A wrong sum must not pass as fast.
        double expected = world * (world + 1) / 2.0;
        if (data[^1] != expected) { Console.Error.WriteLine($"rank {rank}: wrong sum {data[^1]}, expected {expected}"); return 1; }
    }
    times.Sort();
    double median = times[times.Count / 2];
    double busbw = bytes / median * 2 * (world - 1) / world / 1e9;
    if (rank == 0)
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"transport\":\"{transport}\",\"bytes\":{bytes},\"runs\":{runs},\"seconds\":{median:F5},\"busbwGBs\":{busbw:F3},\"soakSeconds\":{soak.Elapsed.TotalSeconds:F1},\"unreachable\":{unreachable},\"rssMiB\":{PeakRssMiB()}}}"));
}
Console.Error.WriteLine($"rank {rank}: peak RSS {PeakRssMiB()} MiB, unreachable events {unreachable}");
Thread.Sleep(1000);   // let the neighbours finish reading before the sockets close
tcp?.Dispose();
cluster.Leave(cluster.SelfAddress);
system.Terminate().Wait(TimeSpan.FromSeconds(10));
return unreachable == 0 ? 0 : 3;

static long PeakRssMiB() =>
    File.ReadLines("/proc/self/status").Where(l => l.StartsWith("VmHWM:")).Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024).FirstOrDefault();

sealed class UnreachableCounter : ReceiveActor
{
    public UnreachableCounter(Action onUnreachable) => Receive<ClusterEvent.UnreachableMember>(_ => onUnreachable());
}
