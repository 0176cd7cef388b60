using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Orchestrator.Collectives;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Tests;

/// <summary>
/// N engines in one process, joined by in-memory links, with hooks to lose, hold back or inspect
/// messages: the all-reduce's tests run here, without Akka, sockets or TorchSharp. Like a real link,
/// each rank receives on a thread of its own, in order (the engine runs on the delivering thread,
/// so delivering on the sender's thread would re-enter it).
/// </summary>
internal sealed class LoopbackRing
{
    private readonly BlockingCollection<IRingMessage>[] _inboxes;
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
        _inboxes = Enumerable.Range(0, size).Select(_ => new BlockingCollection<IRingMessage>()).ToArray();
        for (int r = 0; r < size; r++)
        {
            int rank = r;
            new Thread(() =>
            {
                foreach (var message in _inboxes[rank].GetConsumingEnumerable()) Engines[rank].Deliver(message);
            }) { IsBackground = true, Name = $"loopback-rx {rank}" }.Start();
        }
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
        _inboxes[to].Add(message);
    }

    /// <summary>Runs one all-reduce on each of <paramref name="ranks"/> concurrently; returns each rank's outcome.</summary>
    public Task<Exception?>[] RunAll(float[][] data, IEnumerable<int>? ranks = null) => RunEach(Engines, data, ranks);

    /// <summary>Each rank on a thread of its own: a collective blocks its caller, and a starved thread pool must not look like a stalled rank.</summary>
    public static Task<Exception?>[] RunEach(RingAllReduce[] engines, float[][] data, IEnumerable<int>? ranks = null) =>
        (ranks ?? Enumerable.Range(0, engines.Length)).Select(r => Task.Factory.StartNew(() =>
        {
            try { engines[r].AllReduce(data[r]); return (Exception?)null; }
            catch (Exception ex) { return ex; }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();

    private sealed class Link(LoopbackRing ring, RingTopology topology) : IRingLink
    {
        public void SendChunk(int generation, long collective, int fromRank, int sequence, ReadOnlyMemory<float> data)
        {
            var bytes = MemoryMarshal.AsBytes(data.Span);
            var payload = RingBuffers.Rent(bytes.Length);
            bytes.CopyTo(payload);
            ring.Route(topology.Rank, topology.Right, new RingChunk(generation, collective, fromRank, sequence, payload, bytes.Length));
        }

        public void SendEncoded(int generation, long collective, int fromRank, int sequence, byte[] payload, int length) =>
            ring.Route(topology.Rank, topology.Right, new RingChunk(generation, collective, fromRank, sequence, payload, length));

        public void SendRight(IRingMessage message) => ring.Route(topology.Rank, topology.Right, message);
        public void SendLeft(IRingMessage message) => ring.Route(topology.Rank, topology.Left, message);
    }
}
