using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Cluster;
using Akka.Configuration;
using Orchestrator.Collectives;
using Orchestrator.Bench;
using Orchestrator.Collectives.Links;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;

// One rank of the all-reduce benchmark. Every rank is a cluster member (so the failure detector
// watches the same connection that carries the chunks) and sums float32 buffers over the ring.
// Usage: orchestrator-bench --rank R --ports P0,P1,.. --tcp-ports T0,T1,.. --transport akka|tcp [--certs D]
// (--transport akka-stream: no all-reduce, only the bytes one moves per rank, streamed over Akka Remote)
//                           --mib 16,64 --reps N [--seconds S] [--warmup-seconds S] [--chunk-kib K] [--window W] [--hocon H]
//                           [--compression none|bf16|fp16]
// --certs D: Akka Remote over TLS with the node certificate folder D (as cluster nodes run); without it, plain TCP.
// --train JOB.json: instead of all-reduces, the job's training steps on this rank (one CPU replica), its gradients
// summed over this ring with the job's bucket size; rank 0 prints samples/s, communication share and buckets.
// --throttle-mbs M [--latency-ms L]: every message to a neighbour leaves at M MB/s and arrives L ms later (an
// emulated slower network; the benchmark's own decorator, ThrottledRingLink).
// Rank 0 prints one JSON line per size: median seconds per all-reduce, busbw (in float32-equivalent bytes: what an
// uncompressed all-reduce of the same values moves), unreachable events, peak RSS, and the bytes the process
// allocated per timed all-reduce (all threads: the engine's, the link's, Akka's).
var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--")).ToDictionary(p => p.a[2..], p => args[p.i + 1]);
int rank = int.Parse(options["rank"]);
var ports = options["ports"].Split(',').Select(int.Parse).ToArray();
var tcpPorts = options["tcp-ports"].Split(',').Select(int.Parse).ToArray();
var transport = options["transport"];
// Sizes in MiB, fractions allowed (0.2), rounded down to whole floats; each result line names its size as given.
var mibs = options["mib"].Split(',');
var sizes = mibs.Select(s => (int)(double.Parse(s, CultureInfo.InvariantCulture) * 1024 * 1024) / sizeof(float) * sizeof(float)).ToArray();
int reps = int.Parse(options.GetValueOrDefault("reps", "5"));
double soakSeconds = double.Parse(options.GetValueOrDefault("seconds", "0"), CultureInfo.InvariantCulture);
double warmupSeconds = double.Parse(options.GetValueOrDefault("warmup-seconds", "2"), CultureInfo.InvariantCulture);
int world = ports.Length;

var certs = options.GetValueOrDefault("certs");
var scheme = certs is null ? "akka.tcp" : "akka.ssl.tcp";
var config = ConfigurationFactory.ParseString($$"""
    akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{ports[rank]}}, enable-ssl = {{(certs is null ? "off" : "on")}} }
    akka.cluster.seed-nodes = ["{{scheme}}://bench@127.0.0.1:{{ports[0]}}"]
    # The bench's short-lived cluster of ranks marks no one down (the shipped downing provider lives in Orchestrator.Cluster).
    akka.cluster.downing-provider-class = ""
    akka.coordinated-shutdown.exit-clr = off
    akka.loglevel = WARNING
    """).WithFallback(ConfigurationFactory.ParseString(options.GetValueOrDefault("hocon", ""))).WithFallback(OrchestratorSettings.DefaultConfig());
var setup = BootstrapSetup.Create().WithConfig(config);
using var system = certs is null
    ? ActorSystem.Create("bench", setup)
    : ActorSystem.Create("bench", ActorSystemSetup.Create(setup, Identity(certs)));
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

var nodes = ports.Select(p => $"{scheme}://bench@127.0.0.1:{p}").ToArray();
var ring = new RingTopology(1, rank, nodes);
// Chunk size and window default to what the trainers use; the options are for trying others.
bool overTcp = transport == "tcp";
var chunk = options.TryGetValue("chunk-kib", out var kib) ? int.Parse(kib) * 1024 : overTcp ? TcpRingLink.ChunkBytes : AkkaRingLink.ChunkBytes;
var format = WireCodec.Parse(options.GetValueOrDefault("compression", "none"));
var window = options.TryGetValue("window", out var w) ? int.Parse(w) : overTcp ? 4 : 16;
IActorRef RingActorOf(int r) => ((ExtendedActorSystem)system).Provider.ResolveActorRef(ActorPath.Parse($"{nodes[r]}/user/ring"));
var inbox = new RingEndpoint.Target();
// akka-stream: no all-reduce, only the bytes a ring all-reduce moves per rank, streamed to the right-hand
// neighbour as the Akka link's chunks with the same window: what Akka Remote itself allows.
var stream = transport == "akka-stream" ? new Streamer(rank, window) : null;
if (stream is not null && sizes.Min() < chunk) { Console.Error.WriteLine($"akka-stream needs sizes of at least one chunk ({chunk} bytes)"); return 2; }
var ringActor = system.ActorOf(Props.Create(() => new BenchEndpoint(inbox, stream)), "ring");
TcpRingLink? tcp = overTcp ? new TcpRingLink(IPAddress.Loopback, tcpPorts[rank]) : null;
IRingLink link = tcp ?? (IRingLink)new AkkaRingLink(RingActorOf(ring.Left), RingActorOf(ring.Right), ringActor);
if (options.TryGetValue("throttle-mbs", out var mbs))
    link = new ThrottledRingLink(link, double.Parse(mbs, CultureInfo.InvariantCulture) * 1e6,
        TimeSpan.FromMilliseconds(double.Parse(options.GetValueOrDefault("latency-ms", "0"), CultureInfo.InvariantCulture)));
var trainJob = options.TryGetValue("train", out var trainPath) ? Orchestrator.Core.Jobs.JobSpecParser.ParseFile(trainPath) : null;
var engine = new RingAllReduce(ring, link, new CollectiveOptions(trainJob?.AllReduce.BucketBytes ?? sizes.Max(), chunk, window,
    TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(1), Format: trainJob is null ? format : WireCodec.Parse(trainJob.AllReduce.Compression),
    InFlight: options.TryGetValue("in-flight", out var inFlight) ? int.Parse(inFlight, CultureInfo.InvariantCulture) : trainJob?.AllReduce.InFlight ?? Orchestrator.Core.Jobs.AllReduceSpec.DefaultInFlight));
inbox.Engine = engine;
if (stream is not null)
{
    stream.Right = RingActorOf(ring.Right);
    stream.Self = ringActor;
}
Thread.Sleep(2000);   // every rank's ring actor exists before the first chunk
// Every rank derives the same key (a bench has no job runner to hand one out); the handshake is the product's.
tcp?.Connect(ring, $"127.0.0.1:{tcpPorts[ring.Right]}", engine, System.Security.Cryptography.SHA256.HashData("bench"u8), TimeSpan.FromSeconds(30), CancellationToken.None);
if (trainJob is not null)
{
    var trained = TrainOnRing.Run(trainJob, rank, world, engine);
    if (rank == 0) Console.WriteLine(trained);
    Thread.Sleep(1000);
    tcp?.Dispose();
    cluster.Leave(cluster.SelfAddress);
    system.Terminate().Wait(TimeSpan.FromSeconds(10));
    return 0;
}

var barrier = new float[1];
for (int size = 0; size < sizes.Length; size++)
{
    int bytes = sizes[size];
    var data = new float[bytes / sizeof(float)];
    var times = new List<double>();
    long allocated = 0;
    var soak = Stopwatch.StartNew();
    int runs = 0;
    // Timed runs start once the JIT has settled: tiered compilation was still optimizing the hot path
    // seconds into a run, and measuring then made a 64 MiB all-reduce look a third slower than it is.
    bool warm = false;
    // Every rank must run the same number of all-reduces, so rank 0 decides when to stop and says so in
    // the barrier before each run (the others add 0, so the sum is rank 0's word).
    int streamChunks = Streamer.Chunks(bytes, world, chunk);
    stream?.BeginSize(streamChunks);   // no stream message is in flight: every earlier run ended
    for (bool more = true; more; runs++)
    {
        Array.Fill(data, rank + 1);
        bool last = warm && times.Count >= reps - 1 && soak.Elapsed.TotalSeconds >= soakSeconds;
        barrier[0] = rank == 0 && !last ? 1 : 0;
        engine.AllReduce(barrier);   // every rank starts the clock together, as gloo's benchmark does with dist.barrier()
        more = barrier[0] > 0;
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: false);
        var clock = Stopwatch.StartNew();
        if (stream is not null) stream.Run(data, chunk);
        else engine.AllReduce(data);
        if (warm)
        {
            times.Add(clock.Elapsed.TotalSeconds);
            allocated += GC.GetTotalAllocatedBytes(precise: false) - allocatedBefore;
        }
        else warm = runs >= 1 && soak.Elapsed.TotalSeconds >= warmupSeconds;
        // A wrong sum must not pass as fast.
        double expected = world * (world + 1) / 2.0;
        if (stream is null && data[^1] != expected) { Console.Error.WriteLine($"rank {rank}: wrong sum {data[^1]}, expected {expected}"); return 1; }
    }
    if (rank != 0) continue;   // only rank 0's clock counts (the others' warm-ups may end at other runs)
    times.Sort();
    double median = times[times.Count / 2];
    // busbw: the bytes each rank sends in a ring all-reduce per second; the stream sends them and nothing else.
    double busbw = (stream is null ? bytes * 2.0 * (world - 1) / world : streamChunks * (double)chunk) / median / 1e9;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"transport\":\"{transport}\",\"mib\":\"{mibs[size]}\",\"world\":{world},\"bytes\":{bytes},\"runs\":{runs},\"seconds\":{median:F5},\"busbwGBs\":{busbw:F3},\"soakSeconds\":{soak.Elapsed.TotalSeconds:F1},\"unreachable\":{unreachable},\"rssMiB\":{PeakRssMiB()},\"compression\":\"{WireCodec.Name(format)}\",\"allocMiBPerRun\":{allocated / (double)times.Count / (1 << 20):F2}}}"));
}
Console.Error.WriteLine($"rank {rank}: peak RSS {PeakRssMiB()} MiB, unreachable events {unreachable}");
Thread.Sleep(1000);   // let the neighbours finish reading before the sockets close
tcp?.Dispose();
cluster.Leave(cluster.SelfAddress);
system.Terminate().Wait(TimeSpan.FromSeconds(10));
return unreachable == 0 ? 0 : 3;

static Akka.Remote.Transport.DotNetty.DotNettySslSetup Identity(string folder)
{
    var (certificate, trust) = Orchestrator.Core.Security.CertificateFolder.LoadIdentity(folder,
        Orchestrator.Core.Security.CertificateFolder.NodeCertificate, Orchestrator.Core.Security.CertificateFolder.NodeKey);
    return Orchestrator.Core.Security.RemoteTls.Setup(certificate, trust);
}

static long PeakRssMiB() =>
    File.ReadLines("/proc/self/status").Where(l => l.StartsWith("VmHWM:")).Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024).FirstOrDefault();

/// <summary>Routes the stream's chunks and credits (generation 2) to the streamer, everything else to the engine (the barrier).</summary>
sealed class BenchEndpoint : ReceiveActor
{
    public BenchEndpoint(RingEndpoint.Target inbox, Streamer? stream)
    {
        Receive<IRingMessage>(m =>
        {
            if (stream is not null && m.Generation == Streamer.Generation) stream.OnMessage(m, Sender);
            else inbox.Engine!.Deliver(m);
        });
    }
}

/// <summary>
/// Streams to the right-hand neighbour the bytes a ring all-reduce sends per rank, in the Akka link's
/// frames, with its window and credit batch; the left-hand neighbour's stream is counted and credited.
/// </summary>
sealed class Streamer(int rank, int window)
{
    public const int Generation = 2;
    public IActorRef Right = ActorRefs.Nobody, Self = ActorRefs.Nobody;
    private readonly SemaphoreSlim _credits = new(window);
    private readonly SemaphoreSlim _runsIn = new(0);
    private long _received, _credited, _perRun = long.MaxValue;   // touched by the endpoint actor only

    public static int Chunks(int bytes, int world, int chunk) => (int)Math.Ceiling(bytes * 2.0 * (world - 1) / world / chunk);

    public void BeginSize(int chunksPerRun)
    {
        Volatile.Write(ref _received, 0);
        Volatile.Write(ref _credited, 0);
        Volatile.Write(ref _perRun, chunksPerRun);
    }

    public void Run(float[] data, int chunk)
    {
        long chunks = Volatile.Read(ref _perRun);
        var bytes = MemoryMarshal.AsBytes(data.AsSpan());
        for (int i = 0, offset = 0; i < chunks; i++, offset = (offset + chunk) % (bytes.Length - chunk + 1))
        {
            _credits.Wait();
            Right.Tell(RingChunk.Frame(Generation, 0, rank, i, bytes.Slice(offset, chunk)), Self);
        }
        _runsIn.Wait();   // the left-hand neighbour's stream is in
        for (int i = 0; i < window; i++) _credits.Wait();   // and ours was acknowledged
        _credits.Release(window);
    }

    public void OnMessage(IRingMessage message, IActorRef sender)
    {
        if (message is RingCredit credit) { _credits.Release(credit.Count); return; }
        if (message is RingChunk chunk) RingBuffers.Return(chunk.Payload);   // as the engine does once a chunk is applied
        long n = Volatile.Read(ref _received) + 1, perRun = Volatile.Read(ref _perRun);
        Volatile.Write(ref _received, n);
        bool runEnd = n % perRun == 0;
        if (n - Volatile.Read(ref _credited) >= Math.Max(1, window / 4) || runEnd)
        {
            sender.Tell(new RingCredit(Generation, 0, rank, (int)(n - Volatile.Read(ref _credited))), Self);
            Volatile.Write(ref _credited, n);
        }
        if (runEnd) _runsIn.Release();
    }
}

sealed class UnreachableCounter : ReceiveActor
{
    public UnreachableCounter(Action onUnreachable) => Receive<ClusterEvent.UnreachableMember>(_ => onUnreachable());
}
