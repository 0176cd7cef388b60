using System.Net;
using Akka.Actor;
using Orchestrator.Core.Jobs;

namespace Orchestrator.Collectives.Links;

/// <summary>What a worker's end of a link gets from the worker: where it binds, its neighbours' trainer actors, its own.</summary>
/// <param name="BindHost">The worker node's host (an IP literal): a socket link listens there.</param>
/// <param name="TrainerOf">The trainer actor of a ring rank (for a link that travels through Akka Remote).</param>
/// <param name="Self">The worker's own trainer actor, the sender of what it sends.</param>
public sealed record RingLinkHost(string BindHost, Func<int, IActorRef> TrainerOf, IActorRef Self);

/// <summary>
/// One worker's end of a gradient link, from the moment the worker is told its job until the job ends there:
/// <see cref="Endpoint"/> is advertised when the worker is ready; <see cref="Link"/> is what the engine sends
/// through once the ring is known; <see cref="Connect"/> runs on the compute thread before the first step.
/// </summary>
public interface IRingLinkEnd : IDisposable
{
    /// <summary>What a neighbour needs to reach this end ("" where the link needs nothing beyond the node's address).</summary>
    string Endpoint { get; }

    IRingLink Link(RingTopology ring);

    /// <summary>Blocks until the neighbours are connected and proven (a socket link), or returns at once.</summary>
    void Connect(RingTopology ring, IReadOnlyList<string> endpoints, RingAllReduce engine, byte[] key, TimeSpan timeout, CancellationToken cancellation);
}

/// <summary>
/// The gradient links by the names the job file uses (<c>allReduce.transport</c>, <see cref="RingLinkKind"/>):
/// a worker opens its end of the job's link here and nowhere else.
/// </summary>
public static class RingLinks
{
    private static readonly IReadOnlyDictionary<string, Func<RingLinkHost, IRingLinkEnd>> Registry = new Dictionary<string, Func<RingLinkHost, IRingLinkEnd>>
    {
        [RingLinkKind.Akka.Name] = host => new AkkaEnd(host),
        [RingLinkKind.Tcp.Name] = host => new TcpEnd(host),
    };

    public static IReadOnlyCollection<string> Names => Registry.Keys.ToList();

    /// <exception cref="ArgumentException">No link of that name (the job file's parser refuses one before it gets here).</exception>
    public static IRingLinkEnd Open(string name, RingLinkHost host) =>
        Registry.TryGetValue(name, out var open) ? open(host)
            : throw new ArgumentException($"unknown gradient link '{name}' (known: {string.Join(", ", Registry.Keys)})");

    /// <summary>Ring messages as Akka Remote messages between the neighbours' trainer actors: nothing to listen on or connect.</summary>
    private sealed class AkkaEnd(RingLinkHost host) : IRingLinkEnd
    {
        public string Endpoint => "";
        public IRingLink Link(RingTopology ring) => new AkkaRingLink(host.TrainerOf(ring.Left), host.TrainerOf(ring.Right), host.Self);
        public void Connect(RingTopology ring, IReadOnlyList<string> endpoints, RingAllReduce engine, byte[] key, TimeSpan timeout, CancellationToken cancellation) { }
        public void Dispose() { }
    }

    /// <summary>A socket to each neighbour: the listener opens with the end, so its port can be advertised.</summary>
    private sealed class TcpEnd(RingLinkHost host) : IRingLinkEnd
    {
        private readonly TcpRingLink _tcp = new(IPAddress.Parse(host.BindHost));

        public string Endpoint => $"{host.BindHost}:{_tcp.Port}";
        public IRingLink Link(RingTopology ring) => _tcp;

        public void Connect(RingTopology ring, IReadOnlyList<string> endpoints, RingAllReduce engine, byte[] key, TimeSpan timeout, CancellationToken cancellation) =>
            _tcp.Connect(ring, endpoints[ring.Right], engine, key, timeout, cancellation);

        public void Dispose() => _tcp.Dispose();
    }
}
