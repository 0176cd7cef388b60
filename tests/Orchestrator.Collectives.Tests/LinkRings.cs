using System.Net;
using Akka.Actor;
using Akka.Configuration;
using Orchestrator.Collectives;
using Orchestrator.Collectives.Links;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;

namespace Orchestrator.Collectives.Tests;

/// <summary>N engines joined by one of the real links: the engine's tests run over each.</summary>
public abstract class LinkRing : IDisposable
{
    public RingAllReduce[] Engines { get; protected set; } = [];

    public static LinkRing Create(string transport, int size, CollectiveOptions options) =>
        transport == "tcp" ? new TcpRing(size, options) : new AkkaRing(size, options);

    public Task<Exception?>[] RunAll(float[][] data, IEnumerable<int>? ranks = null) => LoopbackRing.RunEach(Engines, data, ranks);

    public abstract void Dispose();
}

/// <summary>TcpRingLinks on 127.0.0.1, each connected to its neighbours.</summary>
public sealed class TcpRing : LinkRing
{
    /// <summary>The ring generation's key (the job runner hands one out per generation in a cluster).</summary>
    public static readonly byte[] Key = RingHandshake.NewKey();
    private readonly TcpRingLink[] _links;

    public TcpRing(int size, CollectiveOptions options)
    {
        _links = Enumerable.Range(0, size).Select(_ => new TcpRingLink(IPAddress.Loopback)).ToArray();
        var nodes = Enumerable.Range(0, size).Select(r => $"node-{r}").ToArray();
        var rings = Enumerable.Range(0, size).Select(r => new RingTopology(1, r, nodes)).ToArray();
        Engines = rings.Select((t, r) => new RingAllReduce(t, _links[r], options)).ToArray();
        if (size == 1) return;
        Task.WaitAll(rings.Select((t, r) => Task.Run(() =>
            _links[r].Connect(t, $"127.0.0.1:{_links[t.Right].Port}", Engines[r], Key, TimeSpan.FromSeconds(10), CancellationToken.None))).ToArray());
    }

    public override void Dispose()
    {
        foreach (var link in _links) link.Dispose();
    }
}

/// <summary>One actor system per rank in this process, talking over Akka Remote on loopback through our serializer.</summary>
public sealed class AkkaRing : LinkRing
{
    private readonly ActorSystem[] _systems;

    public AkkaRing(int size, CollectiveOptions options)
    {
        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
            akka.coordinated-shutdown.exit-clr = off
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            akka.loglevel = WARNING
            """).WithFallback(OrchestratorSettings.DefaultConfig());
        _systems = Enumerable.Range(0, size).Select(r => ActorSystem.Create($"ring{r}", config)).ToArray();
        var inboxes = Enumerable.Range(0, size).Select(_ => new RingEndpoint.Target()).ToArray();
        var endpoints = Enumerable.Range(0, size).Select(r => _systems[r].ActorOf(RingEndpoint.Props(inboxes[r]), "ring")).ToArray();
        var nodes = _systems.Select(s => ((ExtendedActorSystem)s).Provider.DefaultAddress.ToString()).ToArray();
        Engines = Enumerable.Range(0, size).Select(r =>
        {
            var ring = new RingTopology(1, r, nodes);
            var provider = ((ExtendedActorSystem)_systems[r]).Provider;
            var link = new AkkaRingLink(provider.ResolveActorRef(ActorPath.Parse($"{nodes[ring.Left]}/user/ring")),
                provider.ResolveActorRef(ActorPath.Parse($"{nodes[ring.Right]}/user/ring")), endpoints[r]);
            var engine = new RingAllReduce(ring, link, options);
            inboxes[r].Engine = engine;
            return engine;
        }).ToArray();
    }

    public override void Dispose() => Task.WaitAll(_systems.Select(s => s.Terminate()).ToArray(), TimeSpan.FromSeconds(20));
}
