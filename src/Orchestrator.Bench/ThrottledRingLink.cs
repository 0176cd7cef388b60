using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Orchestrator.Collectives;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Bench;

/// <summary>
/// A link decorator that emulates a slower network for the benchmark (never used by a node): what goes to a
/// neighbour leaves at <paramref name="bytesPerSecond"/>, one message after another as on a wire, and arrives
/// <paramref name="latency"/> later. Each direction has its own wire (a thread that hands messages to the real
/// link when they are due), so credits going left never wait behind chunks going right.
/// </summary>
public sealed class ThrottledRingLink : IRingLink, IDisposable
{
    private readonly Wire _right, _left;

    public ThrottledRingLink(IRingLink inner, double bytesPerSecond, TimeSpan latency)
    {
        _right = new Wire("right", bytesPerSecond, latency);
        _left = new Wire("left", bytesPerSecond, latency);
        Inner = inner;
    }

    public IRingLink Inner { get; }

    public void SendChunk(int generation, long collective, int fromRank, int sequence, ReadOnlyMemory<float> data) =>
        _right.Send(data.Length * sizeof(float), () => Inner.SendChunk(generation, collective, fromRank, sequence, data));

    public void SendEncoded(int generation, long collective, int fromRank, int sequence, byte[] payload, int length) =>
        _right.Send(length, () => Inner.SendEncoded(generation, collective, fromRank, sequence, payload, length));

    public void SendRight(IRingMessage message) => _right.Send(64, () => Inner.SendRight(message));

    public void SendLeft(IRingMessage message) => _left.Send(64, () => Inner.SendLeft(message));

    public void Dispose()
    {
        _right.Dispose();
        _left.Dispose();
    }

    private sealed class Wire : IDisposable
    {
        private readonly BlockingCollection<(long Due, Action Deliver)> _queue = new();
        private readonly double _ticksPerByte;
        private readonly long _latencyTicks;
        private long _free;   // when the wire is next free (Stopwatch ticks); senders hold the queue's order

        public Wire(string name, double bytesPerSecond, TimeSpan latency)
        {
            _ticksPerByte = Stopwatch.Frequency / bytesPerSecond;
            _latencyTicks = (long)(latency.TotalSeconds * Stopwatch.Frequency);
            new Thread(Run) { IsBackground = true, Name = "throttled " + name }.Start();
        }

        public void Send(int bytes, Action deliver)
        {
            lock (_queue)
            {
                _free = Math.Max(_free, Stopwatch.GetTimestamp()) + (long)(bytes * _ticksPerByte);
                _queue.Add((_free + _latencyTicks, deliver));
            }
        }

        private void Run()
        {
            foreach (var (due, deliver) in _queue.GetConsumingEnumerable())
            {
                // Sleeps to the millisecond, never spins: on a small machine a spinning wire would take the CPU that the
                // training it slows down needs (a message may go up to a millisecond early instead).
                for (long ms; (ms = (due - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency) >= 1;) Thread.Sleep((int)ms);
                deliver();
            }
        }

        public void Dispose() => _queue.CompleteAdding();
    }
}
