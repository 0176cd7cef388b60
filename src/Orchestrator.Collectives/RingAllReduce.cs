using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives;

/// <summary>
/// Ring all-reduce (sum) of float32 buffers among the members of one ring generation, over an
/// <see cref="IRingLink"/>. Each bucket is reduce-scattered then all-gathered in chunks, with at most
/// <see cref="CollectiveOptions.Window"/> chunks in flight per link. Every rank ends with the same
/// bytes: each segment is summed along one chain and then copied, never re-added.
///
/// No hangs: a collective that makes no progress for <see cref="CollectiveOptions.Deadline"/>, a gap
/// in chunk sequence numbers, or an abort from another rank fails the collective on this rank with
/// a <see cref="CollectiveFailedException"/> that names the missing rank(s); this rank's diagnosis
/// travels around the ring so that every rank learns it. After a failure the instance is finished:
/// the ring is re-formed with a new generation and a new instance.
///
/// Calls to <see cref="AllReduceAsync"/> must not overlap; every rank calls it the same number of
/// times with buffers of the same length. <see cref="Deliver"/> may be called from any thread.
/// </summary>
public sealed class RingAllReduce
{
    private readonly RingTopology _ring;
    private readonly IRingLink _link;
    private readonly CollectiveOptions _options;
    private readonly Channel<IRingMessage> _inbox = Channel.CreateUnbounded<IRingMessage>();   // multi-reader kind: it can Count, which credit batching asks
    // Messages for a collective this rank has not started yet (a fast neighbour is allowed to be ahead).
    private readonly List<IRingMessage> _early = [];
    private long _collective;
    private string? _failure;

    public RingAllReduce(RingTopology ring, IRingLink link, CollectiveOptions options)
    {
        options.Validate();
        if (ring.Rank < 0 || ring.Rank >= ring.Size) throw new ArgumentException($"rank {ring.Rank} outside a ring of {ring.Size}");
        _ring = ring;
        _link = link;
        _options = options;
    }

    public RingTopology Ring => _ring;

    /// <summary>Messages dropped because they belonged to an older generation or an earlier collective.</summary>
    public long StaleDropped { get; private set; }

    /// <summary>Called by the link for every message from a neighbour.</summary>
    public void Deliver(IRingMessage message)
    {
        if (!_inbox.Writer.TryWrite(message) && message is RingChunk chunk) RingBuffers.Return(chunk.Payload);
    }

    /// <summary>Sums <paramref name="data"/> element-wise across the ring, in place, bucket by bucket.</summary>
    public async Task AllReduceAsync(Memory<float> data, CancellationToken cancellation = default)
    {
        if (_failure is not null) throw new InvalidOperationException($"this ring (generation {_ring.Generation}) already failed: {_failure}");
        if (_ring.Size == 1) return;
        for (int start = 0; start < data.Length; start += _options.BucketElements)
        {
            var bucket = data.Slice(start, Math.Min(_options.BucketElements, data.Length - start));
            await new Collective(this, ++_collective, bucket).RunAsync(cancellation).ConfigureAwait(false);
        }
    }

    /// <summary>The state of one bucket's reduction on this rank.</summary>
    private sealed class Collective(RingAllReduce engine, long id, Memory<float> bucket)
    {
        private readonly RingSchedule _plan = RingSchedule.Create(bucket.Length, engine._ring.Size, engine._ring.Rank, engine._options.ChunkElements);
        private readonly Queue<IRingMessage> _pending = new();
        private int _sent, _applied, _credits = engine._options.Window, _acknowledged;
        private long _lastProgress = Stopwatch.GetTimestamp();
        private int _fromLeft;
        private int _uncredited;
        private int CreditBatch => Math.Max(1, engine._options.Window / 4);

        private RingTopology Ring => engine._ring;
        private int Generation => Ring.Generation;

        public async Task RunAsync(CancellationToken cancellation)
        {
            TakeEarlyMessages();
            while (_applied < _plan.Incoming.Count || _sent < _plan.Outgoing.Count)
            {
                SendReady();
                if (_applied == _plan.Incoming.Count && _sent == _plan.Outgoing.Count) break;
                var message = await NextAsync(cancellation).ConfigureAwait(false);
                if (message is null)
                {
                    var (report, suspects, certain) = Diagnose();
                    Fail(report, suspects, certain);
                }
                else Handle(message);
                if (engine._failure is not null) await GatherReportsAndThrowAsync(cancellation).ConfigureAwait(false);
            }
        }

        private void TakeEarlyMessages()
        {
            var early = engine._early;
            for (int i = 0; i < early.Count; i++)
            {
                if (early[i].Collective != id) continue;
                _pending.Enqueue(early[i]);
                early.RemoveAt(i--);
            }
        }

        private void SendReady()
        {
            var span = bucket.Span;
            while (_sent < _plan.Outgoing.Count && _credits > 0 && _plan.IsReady(_sent, _applied))
            {
                var chunk = _plan.Outgoing[_sent];
                int bytes = chunk.Count * sizeof(float);
                var payload = RingBuffers.Rent(bytes);
                MemoryMarshal.AsBytes(span.Slice(chunk.Offset, chunk.Count)).CopyTo(payload);
                engine._link.SendRight(new RingChunk(Generation, id, Ring.Rank, _sent, payload, bytes));
                _sent++;
                _credits--;
            }
        }

        private async ValueTask<IRingMessage?> NextAsync(CancellationToken cancellation)
        {
            if (_pending.TryDequeue(out var early)) return early;
            var reader = engine._inbox.Reader;
            if (reader.TryRead(out var message)) return message;
            var remaining = engine._options.Deadline - Stopwatch.GetElapsedTime(_lastProgress);
            if (remaining <= TimeSpan.Zero) return null;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(remaining);
            try
            {
                while (await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false))
                    if (reader.TryRead(out message)) return message;
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested) { }
            return reader.TryRead(out message) ? message : null;
        }

        private void Handle(IRingMessage message)
        {
            if (message.Generation != Generation || message.Collective < id)
            {
                // Credits for the last chunks of a finished collective arrive after it ended: normal.
                if (message is not RingCredit || message.Generation != Generation) Drop(message);
                return;
            }
            if (message.Collective > id)
            {
                engine._early.Add(message);
                return;
            }
            switch (message)
            {
                case RingChunk chunk: Apply(chunk); break;
                case RingCredit credit:
                    _credits += credit.Count;
                    _acknowledged += credit.Count;
                    _lastProgress = Stopwatch.GetTimestamp();
                    break;
                case RingAbort abort: OnAbort(abort); break;
            }
        }

        private void Apply(RingChunk chunk)
        {
            try
            {
                if (chunk.Sequence != _applied)
                {
                    Fail($"chunk {_applied} from {Ring.Describe(Ring.Left)} was lost (chunk {chunk.Sequence} arrived instead)", [Ring.Left]);
                    return;
                }
                var span = _plan.Incoming[_applied];
                if (chunk.Length != span.Count * sizeof(float))
                {
                    Fail($"chunk {_applied} from {Ring.Describe(Ring.Left)} has {chunk.Length} bytes, expected {span.Count * sizeof(float)}", [Ring.Left]);
                    return;
                }
                var source = MemoryMarshal.Cast<byte, float>(chunk.Payload.AsSpan(0, chunk.Length));
                var target = bucket.Span.Slice(span.Offset, span.Count);
                if (_plan.IsReduceStep(span.Step)) AddInto(target, source);
                else source.CopyTo(target);
            }
            finally { RingBuffers.Return(chunk.Payload); }
            _applied++;
            _fromLeft++;
            _lastProgress = Stopwatch.GetTimestamp();
            // Credits go back in batches of up to a quarter window while chunks queue up (fewer messages on
            // the Akka link), and at once whenever nothing else is waiting: a live rank that is idle has
            // acknowledged everything, which is what the stall diagnosis relies on.
            if (++_uncredited >= CreditBatch || (_pending.Count == 0 && engine._inbox.Reader.Count == 0) || _applied == _plan.Incoming.Count)
            {
                engine._link.SendLeft(new RingCredit(Generation, id, Ring.Rank, _uncredited));
                _uncredited = 0;
            }
        }

        private static void AddInto(Span<float> target, ReadOnlySpan<float> source)
        {
            int i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                var t = MemoryMarshal.Cast<float, Vector<float>>(target);
                var s = MemoryMarshal.Cast<float, Vector<float>>(source);
                for (int v = 0; v < t.Length; v++) t[v] += s[v];
                i = t.Length * Vector<float>.Count;
            }
            for (; i < target.Length; i++) target[i] += source[i];
        }

        private void Drop(IRingMessage message)
        {
            engine.StaleDropped++;
            if (message is RingChunk chunk) RingBuffers.Return(chunk.Payload);
        }

        /// <summary>
        /// Who is this rank waiting for, after a whole deadline without progress? Certain: a right-hand
        /// neighbour that acknowledged nothing (a live participant consumes every chunk as it comes),
        /// or a left-hand one that sent no chunk at all (a live one sends its first segment at once).
        /// Uncertain: a left-hand neighbour that went quiet midway, which may itself be waiting.
        /// </summary>
        private (string Report, int[] Suspects, bool Certain) Diagnose()
        {
            var seconds = engine._options.Deadline.TotalSeconds;
            var certain = new List<(string, int)>();
            var uncertain = new List<(string, int)>();
            if (_applied < _plan.Incoming.Count)
            {
                if (_fromLeft == 0 && _plan.FirstSegmentChunks > 0)
                    certain.Add(($"no chunk from {Ring.Describe(Ring.Left)} in {seconds:0.#} s", Ring.Left));
                else
                    uncertain.Add(($"{Ring.Describe(Ring.Left)} sent nothing for {seconds:0.#} s after {_fromLeft} chunk(s)", Ring.Left));
            }
            int outstanding = _sent - _acknowledged;
            if (outstanding > 0)
                certain.Add(($"{Ring.Describe(Ring.Right)} acknowledged none of the last {outstanding} chunk(s) sent to it in {seconds:0.#} s", Ring.Right));
            var all = certain.Concat(uncertain).ToList();
            var report = all.Count == 0 ? $"no progress for {seconds:0.#} s" : string.Join("; ", all.Select(p => p.Item1));
            var suspects = (certain.Count > 0 ? certain : uncertain).Select(p => p.Item2).Distinct().ToArray();
            return (report, suspects, certain.Count > 0);
        }

        private readonly Dictionary<int, RingAbort> _reports = new();

        /// <summary>Records this rank's diagnosis, tells both neighbours, and marks the engine failed.</summary>
        private void Fail(string report, int[] suspects, bool certain = true)
        {
            var abort = new RingAbort(Generation, id, Ring.Rank, Ring.Rank, report, suspects, certain);
            _reports[Ring.Rank] = abort;
            engine._link.SendRight(abort);
            if (Ring.Left != Ring.Right) engine._link.SendLeft(abort);
            engine._failure = report;
        }

        private void OnAbort(RingAbort abort)
        {
            if (_reports.ContainsKey(abort.OriginRank)) return;
            _reports[abort.OriginRank] = abort;
            // Pass it on, away from where it came from, so that it reaches every rank of a broken ring.
            var forwarded = abort with { FromRank = Ring.Rank };
            if (abort.FromRank == Ring.Left) engine._link.SendRight(forwarded);
            else engine._link.SendLeft(forwarded);
            engine._failure ??= abort.Report;
        }

        /// <summary>After failing here, listen a little for the other ranks' reports: the rank next to a dead peer knows best.</summary>
        private async Task GatherReportsAndThrowAsync(CancellationToken cancellation)
        {
            var until = Stopwatch.GetTimestamp() + (long)(engine._options.AbortGrace.TotalSeconds * Stopwatch.Frequency);
            var reader = engine._inbox.Reader;
            while (Stopwatch.GetTimestamp() < until)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                timeout.CancelAfter(TimeSpan.FromSeconds(Math.Max(0, (until - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency)));
                try
                {
                    if (!await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) break;
                }
                catch (OperationCanceledException) when (!cancellation.IsCancellationRequested) { break; }
                while (reader.TryRead(out var message))
                {
                    if (message is RingAbort abort && abort.Generation == Generation && abort.Collective == id) OnAbort(abort);
                    else if (message is RingChunk chunk) RingBuffers.Return(chunk.Payload);
                }
            }
            Throw();
        }

        private void Throw()
        {
            // A rank that sent a report is alive, whatever its neighbours suspected of it; direct
            // evidence, where any rank has it, outweighs stalls that may have spread around the ring.
            var alive = _reports.Keys.ToHashSet();
            var evidence = _reports.Values.Any(r => r.Certain) ? _reports.Values.Where(r => r.Certain) : _reports.Values;
            var suspected = evidence.SelectMany(r => r.SuspectRanks).Distinct().ToList();
            var missing = suspected.Where(r => !alive.Contains(r)).ToList();
            if (missing.Count == 0) missing = suspected;
            var names = missing.Count == 0 ? "unknown" : string.Join(", ", missing.Order().Select(Ring.Describe));
            var reports = string.Join("; ", _reports.Values.OrderBy(r => r.OriginRank).Select(r => $"rank {r.OriginRank}: {r.Report}"));
            throw new CollectiveFailedException(
                $"all-reduce failed on {Ring.Describe(Ring.Rank)} (ring generation {Generation}, collective {id}); missing: {names}. Reports: {reports}",
                missing.Order().ToArray());
        }
    }
}
