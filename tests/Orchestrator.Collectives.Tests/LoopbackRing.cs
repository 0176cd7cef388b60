using Orchestrator.Collectives;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Tests;

/// <summary>
/// N engines in one process, joined by in-memory links, with hooks to lose, hold back or inspect
/// messages: the all-reduce's tests run here, without Akka, sockets or TorchSharp.
/// </summary>
internal sealed class LoopbackRing
{
    private readonly object _gate = new();
    private readonly int[] _inFlight;

    public RingAllReduce[] Engines { get; }
    public RingTopology[] Topologies { get; }

    /// <summary>Return false to lose the message (from, to, message).</summary>
    public Func<int, int, IRingMessage, bool> Deliverable { get; set; } = (_, _, _) => true;

    public int MaxInFlight { get; private set; }

    public LoopbackRing(int size, CollectiveOptions options, int generation = 1)
    {
        var nodes = Enumerable.Range(0, size).Select(r => $"node-{r}").ToArray();
        Topologies = Enumerable.Range(0, size).Select(r => new RingTopology(generation, r, nodes)).ToArray();
        _inFlight = new int[size];
        Engines = Topologies.Select(t => new RingAllReduce(t, new Link(this, t), options)).ToArray();
    }

    private void Route(int from, int to, IRingMessage message)
    {
        lock (_gate)
        {
            if (message is RingChunk) MaxInFlight = Math.Max(MaxInFlight, ++_inFlight[from]);
            if (message is RingCredit credit) _inFlight[to] -= credit.Count;
        }
        if (!Deliverable(from, to, message))
        {
            if (message is RingChunk chunk) RingBuffers.Return(chunk.Payload);
            return;
        }
        Engines[to].Deliver(message);
    }

    /// <summary>Runs one all-reduce on each of <paramref name="ranks"/> concurrently; returns each rank's outcome.</summary>
    public Task<Exception?>[] RunAll(float[][] data, IEnumerable<int>? ranks = null) =>
        (ranks ?? Enumerable.Range(0, Engines.Length)).Select(r => Task.Run(async () =>
        {
            try { await Engines[r].AllReduceAsync(data[r]); return (Exception?)null; }
            catch (Exception ex) { return ex; }
        })).ToArray();

    private sealed class Link(LoopbackRing ring, RingTopology topology) : IRingLink
    {
        public void SendRight(IRingMessage message) => ring.Route(topology.Rank, topology.Right, message);
        public void SendLeft(IRingMessage message) => ring.Route(topology.Rank, topology.Left, message);
    }
}
