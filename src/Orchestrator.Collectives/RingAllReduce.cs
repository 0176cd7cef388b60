using System.Diagnostics;
using System.Runtime.InteropServices;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives;

/// <summary>
/// Ring all-reduce (sum) of float32 buffers among the members of one ring generation, over an
/// <see cref="IRingLink"/>. Each bucket is reduce-scattered then all-gathered in chunks, with at most
/// <see cref="CollectiveOptions.Window"/> chunks in flight per link. Every rank ends with the same
/// bytes: each segment is summed along one chain and then copied, never re-added.
///
/// The engine is a state machine that runs on whichever thread delivers a message (the TCP link's
/// reader, the actor that receives Akka messages): a chunk is added into the bucket, acknowledged and
/// forwarded right where it arrives, because a hand-off to another thread per chunk cost more than
/// the work (measured with scripts/bench.sh on 2 cores). The caller of <see cref="AllReduce"/> sends
/// the first chunks and then only waits. Outgoing chunks are not copied by the engine: the link
/// borrows them from the bucket.
///
/// With a 16-bit <see cref="CollectiveOptions.Format"/> every value travels rounded (<see cref="WireCodec"/>) and is
/// widened before it is added, so sums stay float32; the rank that completes a segment's sum rounds it once
/// and keeps the rounded value itself, so every rank still ends with the same bytes, and
/// <see cref="RingArithmetic"/> computes them without a ring.
///
/// No hangs: a collective that makes no progress for <see cref="CollectiveOptions.Deadline"/>, a gap
/// in chunk sequence numbers, or an abort from another rank fails the collective on this rank with
/// a <see cref="CollectiveFailedException"/> that names the missing rank(s); this rank's diagnosis
/// travels around the ring so that every rank learns it. After a failure the instance is finished:
/// the ring is re-formed with a new generation and a new instance.
///
/// Several buckets may be on the ring at once (<see cref="CollectiveOptions.InFlight"/>): <see cref="AllReduce"/>
/// starts the next bucket while the one before finishes, and a caller that produces buckets over time (gradients
/// during backward) uses <see cref="Begin"/> and <see cref="Await"/>. Collectives are numbered in the order they
/// begin, and every rank begins the same buckets in the same order; each keeps its own chunks, credits and
/// sequence, so their chunks may interleave on a link. One thread calls <see cref="AllReduce"/>, <see cref="Begin"/>
/// and <see cref="Await"/>; <see cref="Deliver"/> may be called from any thread.
/// </summary>
public sealed class RingAllReduce
{
    private readonly RingTopology _ring;
    private readonly IRingLink _link;
    private readonly CollectiveOptions _options;
    private readonly object _gate = new();
    // Messages for a collective this rank has not started yet (a fast neighbour is allowed to be ahead).
    private readonly List<IRingMessage> _early = [];
    private readonly Dictionary<long, Collective> _active = [];   // begun and not yet awaited to its end, by number
    private long _collective;        // the number of the newest collective begun
    private string? _failure;
    // Every rank's diagnosis heard by this one, by origin rank: the ring fails as a whole, whichever collective saw it.
    private readonly Dictionary<int, RingAbort> _reports = [];
    // Widened values of a 16-bit chunk before they are added, and rounding room; used under the lock only.
    private readonly float[] _decoded;
    private readonly byte[] _rounding;

    public RingAllReduce(RingTopology ring, IRingLink link, CollectiveOptions options)
    {
        options.Validate();
        if (ring.Rank < 0 || ring.Rank >= ring.Size) throw new ArgumentException($"rank {ring.Rank} outside a ring of {ring.Size}");
        _ring = ring;
        _link = link;
        _options = options;
        bool compressed = options.Format != WireFormat.Float32;
        _decoded = compressed ? new float[options.ChunkElements] : [];
        _rounding = compressed ? new byte[options.ChunkElements * sizeof(ushort)] : [];
    }

    public RingTopology Ring => _ring;

    public CollectiveOptions Options => _options;

    /// <summary>Messages dropped because they belonged to an older generation or an earlier collective.</summary>
    public long StaleDropped { get { lock (_gate) return _staleDropped; } }
    private long _staleDropped;

    /// <summary>Messages refused by <see cref="RingAdmission"/> (a wrong sender, a number out of range).</summary>
    public long Refused { get { lock (_gate) return _refused; } }
    private long _refused;

    /// <summary>Chunks held for collectives not begun yet (at most a window of them for each of the next <see cref="CollectiveOptions.InFlight"/>).</summary>
    public int EarlyCount { get { lock (_gate) return _early.Count; } }

    private int EarlyChunks(long collective)
    {
        int count = 0;
        foreach (var message in _early) if (message.Collective == collective) count++;
        return count;
    }

    /// <summary>Called by the link for every message from a neighbour; handles it on the calling thread.</summary>
    public void Deliver(IRingMessage message)
    {
        lock (_gate)
        {
            if (RingAdmission.Refusal(message, _ring, _options.Window) is not null)
            {
                _refused++;
                if (message is RingChunk refused) RingBuffers.Return(refused.Payload);
                return;
            }
            if (message.Generation == _ring.Generation)
            {
                if (_active.TryGetValue(message.Collective, out var active))
                {
                    active.Handle(message);
                    WakeCallerIfOver(active);
                    return;
                }
                // A neighbour failed a collective, under way here, ended here or not begun here yet: the ring has failed;
                // pass the word on and wake the caller (the next call fails at once).
                if (message is RingAbort abort && abort.Collective <= _collective + _options.InFlight)
                {
                    OnAbort(abort);
                    return;
                }
                // A neighbour may be ahead by the collectives it may have in flight, never more (it begins one only
                // when an earlier one has ended, which needs this rank), and by at most a window of chunks in each
                // (it has had no credit for them): anything beyond that is dropped, so the buffer stays bounded.
                if (message is RingChunk chunk && chunk.Collective > _collective && chunk.Collective <= _collective + _options.InFlight
                    && chunk.Sequence < _options.Window && EarlyChunks(chunk.Collective) < _options.Window)
                {
                    _early.Add(message);
                    return;
                }
                // Credits for the last chunks of a finished collective arrive after it ended: normal.
                if (message is RingCredit && message.Collective <= _collective) return;
            }
            Drop(message);
        }
    }

    /// <summary>
    /// For a link that reads chunks off a stream: the part of the bucket where chunk <paramref name="sequence"/>
    /// of <paramref name="bytes"/> bytes may be read directly (then call <see cref="Landed"/>), or empty when
    /// it must be delivered as a <see cref="RingChunk"/> (a sum, an early or unexpected chunk). After a failed
    /// collective the caller's buffer is undefined until the link stops reading.
    /// </summary>
    public Memory<float> LandingZone(int generation, long collective, int sequence, int bytes)
    {
        lock (_gate)
            return generation == _ring.Generation && _active.TryGetValue(collective, out var active)
                ? active.LandingZone(sequence, bytes)
                : default;
    }

    /// <summary>The chunk that <see cref="LandingZone"/> placed is in the bucket.</summary>
    public void Landed(int generation, long collective, int sequence)
    {
        lock (_gate)
        {
            if (generation != _ring.Generation || !_active.TryGetValue(collective, out var active)) return;
            active.Landed(sequence);
            WakeCallerIfOver(active);
        }
    }

    /// <summary>The caller waits without a pulse per chunk; it is woken when the collective is done or failed.</summary>
    private void WakeCallerIfOver(Collective active)
    {
        if (active.IsDone || _failure is not null) Monitor.PulseAll(_gate);
    }

    /// <summary>
    /// Sums <paramref name="data"/> element-wise across the ring, in place, bucket by bucket, with up to
    /// <see cref="CollectiveOptions.InFlight"/> buckets on the ring at once.
    /// </summary>
    /// <exception cref="ArgumentException">The data is not in a managed array (the link may read it after a failure).</exception>
    public void AllReduce(Memory<float> data, CancellationToken cancellation = default)
    {
        if (!MemoryMarshal.TryGetArray<float>(data, out _))
            throw new ArgumentException("all-reduce data must live in a managed array: the link borrows it", nameof(data));
        lock (_gate) ThrowIfFailed();
        if (_ring.Size == 1) return;
        var pending = new Queue<long>(_options.InFlight);
        int bucket = 0;
        try
        {
            for (int start = 0; start < data.Length; start += _options.BucketElements, bucket++)
            {
                if (pending.Count == _options.InFlight) Await(pending.Dequeue(), cancellation);
                pending.Enqueue(Begin(data.Slice(start, Math.Min(_options.BucketElements, data.Length - start)), bucket, cancellation));
            }
            while (pending.Count > 0) Await(pending.Dequeue(), cancellation);
        }
        catch (Exception ex) when (ex is not CollectiveFailedException)
        {
            // Cancelled, or a BucketDone callback threw: the buckets still on the ring are given up, and the neighbours told.
            lock (_gate) Abandon($"the all-reduce was abandoned on {_ring.Describe(_ring.Rank)}: {ex.GetType().Name}");
            throw;
        }
    }

    /// <summary>
    /// Told after each bucket's reduction, on the thread that awaited it: the bucket's index (in its all-reduce, or as given
    /// to <see cref="Begin"/>), its elements, and when it began and ended (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).
    /// For the step trace; null costs nothing.
    /// </summary>
    public Action<int, int, long, long>? BucketDone { get; set; }

    /// <summary>
    /// Begins summing <paramref name="bucket"/> across the ring and returns its collective's number at once; the link
    /// reads and writes the bucket until <see cref="Await"/> says it is done. At most <see cref="CollectiveOptions.InFlight"/>
    /// may be begun and not yet awaited to their end.
    /// </summary>
    public long Begin(Memory<float> bucket, int index = 0, CancellationToken cancellation = default)
    {
        if (!MemoryMarshal.TryGetArray<float>(bucket, out _))
            throw new ArgumentException("all-reduce data must live in a managed array: the link borrows it", nameof(bucket));
        lock (_gate)
        {
            if (cancellation.IsCancellationRequested)
            {
                Abandon($"the all-reduce was cancelled on {_ring.Describe(_ring.Rank)}");
                cancellation.ThrowIfCancellationRequested();
            }
            ThrowIfFailed();
            if (_active.Count >= _options.InFlight)
                throw new InvalidOperationException($"{_active.Count} collectives are in flight already, the most allowed (await one first)");
            var collective = new Collective(this, ++_collective, bucket) { Index = index, Began = BucketDone is null ? 0 : Stopwatch.GetTimestamp() };
            _active[collective.Id] = collective;
            collective.Start();
            return collective.Id;
        }
    }

    /// <summary>
    /// Waits until collective <paramref name="id"/> is done (true), or until <paramref name="yieldWhen"/>, checked whenever
    /// the engine is woken (by a message or <see cref="Nudge"/>), says the caller has something else to do (false: the
    /// collective goes on; await it again). A failed ring throws <see cref="CollectiveFailedException"/>, naming the missing rank(s).
    /// </summary>
    public bool Await(long id, CancellationToken cancellation = default, Func<bool>? yieldWhen = null)
    {
        using var wake = cancellation.Register(() => { lock (_gate) Monitor.PulseAll(_gate); });
        Collective? collective;
        lock (_gate)
        {
            if (!_active.TryGetValue(id, out collective))
            {
                ThrowIfFailed();
                throw new ArgumentException($"collective {id} is not in flight", nameof(id));
            }
            bool ended = true;   // also when it failed or was cancelled: it is over either way
            try
            {
                ended = collective.Wait(cancellation, yieldWhen);
                if (!ended) return false;
            }
            finally
            {
                if (ended) _active.Remove(id);
            }
        }
        BucketDone?.Invoke(collective.Index, collective.Length, collective.Began, Stopwatch.GetTimestamp());
        return true;
    }

    /// <summary>Wakes a caller waiting in <see cref="Await"/> to check its <c>yieldWhen</c>.</summary>
    public void Nudge()
    {
        lock (_gate) Monitor.PulseAll(_gate);
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
            throw new CollectiveFailedException($"this ring (generation {_ring.Generation}) already failed: {_failure}", Missing());
    }

    /// <summary>Records this rank's diagnosis, tells both neighbours, marks the engine failed and wakes its caller.</summary>
    private void Fail(long collective, string report, int[] suspects, bool certain)
    {
        var abort = new RingAbort(_ring.Generation, collective, _ring.Rank, _ring.Rank, report, suspects, certain);
        _reports[_ring.Rank] = abort;
        _link.SendRight(abort);
        if (_ring.Left != _ring.Right) _link.SendLeft(abort);
        _failure = report;
        Monitor.PulseAll(_gate);
    }

    /// <summary>Another rank's diagnosis, whichever collective it names: the ring fails as a whole.</summary>
    private void OnAbort(RingAbort abort)
    {
        var report = abort.Report ?? "(no report)";   // from the network: normalised, bounded
        abort = abort with { Report = report.Length > RingAdmission.MaxReportChars ? report[..RingAdmission.MaxReportChars] : report, SuspectRanks = abort.SuspectRanks ?? [] };
        if (_reports.ContainsKey(abort.OriginRank)) return;
        _reports[abort.OriginRank] = abort;
        // Pass it on, away from where it came from, so that it reaches every rank of a broken ring.
        var forwarded = abort with { FromRank = _ring.Rank };
        if (abort.FromRank == _ring.Left) _link.SendRight(forwarded);
        else _link.SendLeft(forwarded);
        _failure ??= abort.Report;
        Monitor.PulseAll(_gate);
    }

    /// <summary>
    /// The caller gives up on what it began (cancelled, or failed between collectives): the neighbours hear why at once
    /// instead of waiting out their deadline and blaming this live rank, and the ring takes no further collective.
    /// </summary>
    private void Abandon(string report)
    {
        if (_failure is null) Fail(_collective, report, [], certain: false);
    }

    /// <summary>
    /// A rank that sent a report is alive, whatever its neighbours suspected of it; direct evidence,
    /// where any rank has it, outweighs stalls that may have spread around the ring.
    /// </summary>
    private int[] Missing()
    {
        var alive = _reports.Keys.ToHashSet();
        var evidence = _reports.Values.Any(r => r.Certain) ? _reports.Values.Where(r => r.Certain) : _reports.Values;
        var suspected = evidence.SelectMany(r => r.SuspectRanks).Distinct().ToList();
        var missing = suspected.Where(r => !alive.Contains(r)).ToList();
        return (missing.Count == 0 ? suspected : missing).Order().ToArray();
    }

    private void Drop(IRingMessage message)
    {
        _staleDropped++;
        if (message is RingChunk chunk) RingBuffers.Return(chunk.Payload);
    }

    /// <summary>The state of one bucket's reduction on this rank. Every member runs under the engine's lock.</summary>
    private sealed class Collective(RingAllReduce engine, long id, Memory<float> bucket)
    {
        private readonly RingSchedule _plan = RingSchedule.Create(bucket.Length, engine._ring.Size, engine._ring.Rank, engine._options.ChunkElements);
        private int _sent, _applied, _credits = engine._options.Window, _acknowledged;
        private long _lastProgress = Stopwatch.GetTimestamp();
        private int _uncredited;
        private int _landing = -1;   // the chunk a link is reading straight into the bucket

        // Credits go back in batches of a quarter window (fewer messages), and always for the last chunk.
        private int CreditBatch => engine._options.EffectiveCreditBatch;
        private WireFormat Format => engine._options.Format;
        private int WireBytes(int values) => values * WireCodec.BytesPerValue(Format);

        public long Id => id;
        public int Index { get; init; }
        public long Began { get; init; }
        public int Length => bucket.Length;
        // Done when every chunk is in and every chunk sent was acknowledged: the link may still be reading an
        // unacknowledged chunk's values from the bucket, which the caller is free to change once this returns.
        public bool IsDone => _applied == _plan.Incoming.Count && _sent == _plan.Outgoing.Count && _acknowledged == _sent;
        private RingTopology Ring => engine._ring;
        private int Generation => Ring.Generation;

        /// <summary>Takes what a fast neighbour already sent for this collective and sends the first chunks.</summary>
        public void Start()
        {
            var early = engine._early;
            for (int i = 0; i < early.Count; i++)
            {
                if (early[i].Collective != id) continue;
                var message = early[i];
                early.RemoveAt(i--);
                Handle(message);
            }
            SendReady();
        }

        /// <summary>
        /// Until done (true), failed, cancelled, or a whole deadline without progress (then: diagnose and fail), or until
        /// <paramref name="yieldWhen"/> holds (false).
        /// </summary>
        public bool Wait(CancellationToken cancellation, Func<bool>? yieldWhen)
        {
            while (!IsDone && engine._failure is null)
            {
                if (yieldWhen?.Invoke() == true) return false;
                if (cancellation.IsCancellationRequested)
                {
                    // The neighbours hear why, instead of waiting out their deadline and blaming a live rank, and
                    // this ring takes no further collective: the links may still be reading the bucket.
                    Fail($"the all-reduce was cancelled on {Ring.Describe(Ring.Rank)}", [], certain: false);
                    cancellation.ThrowIfCancellationRequested();
                }
                var remaining = engine._options.Deadline - Stopwatch.GetElapsedTime(_lastProgress);
                if (remaining <= TimeSpan.Zero)
                {
                    var (report, suspects, certain) = Diagnose();
                    Fail(report, suspects, certain);
                    break;
                }
                Monitor.Wait(engine._gate, remaining);
            }
            if (engine._failure is null) return true;
            // Listen a little for the other ranks' reports (handled by Deliver meanwhile): the rank next to a
            // dead peer knows best.
            var until = Stopwatch.GetTimestamp() + (long)(engine._options.AbortGrace.TotalSeconds * Stopwatch.Frequency);
            for (long now; (now = Stopwatch.GetTimestamp()) < until;)
            {
                cancellation.ThrowIfCancellationRequested();
                Monitor.Wait(engine._gate, TimeSpan.FromSeconds((until - now) / (double)Stopwatch.Frequency));
            }
            Throw();
            return true;
        }

        public void Handle(IRingMessage message)
        {
            switch (message)
            {
                case RingChunk chunk when engine._failure is not null:
                    RingBuffers.Return(chunk.Payload);
                    break;
                case RingChunk chunk:
                    Apply(chunk);
                    SendReady();
                    break;
                case RingCredit credit:
                    _credits += credit.Count;
                    _acknowledged += credit.Count;
                    _lastProgress = Stopwatch.GetTimestamp();
                    SendReady();
                    break;
                case RingAbort abort:
                    engine.OnAbort(abort);
                    break;
            }
        }

        private void SendReady()
        {
            while (engine._failure is null && _sent < _plan.Outgoing.Count && _credits > 0 && _plan.IsReady(_sent, _applied))
            {
                var chunk = _plan.Outgoing[_sent];
                int sequence = _sent++;
                _credits--;
                var values = bucket.Slice(chunk.Offset, chunk.Count);
                if (Format == WireFormat.Float32)
                {
                    engine._link.SendChunk(Generation, id, Ring.Rank, sequence, values);
                    continue;
                }
                var wire = RingBuffers.Rent(WireBytes(chunk.Count));
                WireCodec.Encode(Format, values.Span, wire);
                engine._link.SendEncoded(Generation, id, Ring.Rank, sequence, wire, WireBytes(chunk.Count));
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
                if (_applied >= _plan.Incoming.Count)
                {
                    Fail($"{Ring.Describe(Ring.Left)} sent chunk {chunk.Sequence} of a collective that has {_plan.Incoming.Count}", [Ring.Left]);
                    return;
                }
                var span = _plan.Incoming[_applied];
                if (chunk.Length != WireBytes(span.Count))
                {
                    Fail($"chunk {_applied} from {Ring.Describe(Ring.Left)} has {chunk.Length} bytes, expected {WireBytes(span.Count)}", [Ring.Left]);
                    return;
                }
                var target = bucket.Span.Slice(span.Offset, span.Count);
                bool reduce = _plan.IsReduceStep(span.Step);
                if (Format == WireFormat.Float32)
                {
                    var source = MemoryMarshal.Cast<byte, float>(chunk.Data);
                    if (reduce) WireCodec.Add(target, source);
                    else source.CopyTo(target);
                }
                else if (!reduce) WireCodec.Decode(Format, chunk.Data, target);
                else
                {
                    WireCodec.AddDecoded(Format, chunk.Data, target, engine._decoded);
                    // The last addition completes this rank's segment: it keeps exactly what it will send.
                    if (span.Step == _plan.ReduceSteps - 1) WireCodec.Round(Format, target, engine._rounding);
                }
            }
            finally { RingBuffers.Return(chunk.Payload); }
            Applied();
        }

        /// <summary>
        /// Where the next chunk may be read straight into the bucket, or empty: only an all-gather chunk (a
        /// copy, not a sum) that is the next one expected. Nothing else writes that region until it is applied.
        /// </summary>
        public Memory<float> LandingZone(int sequence, int bytes)
        {
            if (engine._failure is not null || sequence != _applied || _applied >= _plan.Incoming.Count) return default;
            var span = _plan.Incoming[_applied];
            if (Format != WireFormat.Float32 || _plan.IsReduceStep(span.Step) || bytes != span.Count * sizeof(float)) return default;
            _landing = sequence;
            return bucket.Slice(span.Offset, span.Count);
        }

        public void Landed(int sequence)
        {
            if (_landing != sequence || engine._failure is not null) return;
            _landing = -1;
            Applied();
            SendReady();
        }

        private void Applied()
        {
            _applied++;
            _lastProgress = Stopwatch.GetTimestamp();
            if (++_uncredited >= CreditBatch || _applied == _plan.Incoming.Count)
            {
                engine._link.SendLeft(new RingCredit(Generation, id, Ring.Rank, _uncredited));
                _uncredited = 0;
            }
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
                if (_applied == 0 && _plan.Incoming.Count > 0 && _plan.Incoming[0].Step == 0)
                    certain.Add(($"no chunk from {Ring.Describe(Ring.Left)} in {seconds:0.#} s", Ring.Left));
                else
                    uncertain.Add(($"{Ring.Describe(Ring.Left)} sent nothing for {seconds:0.#} s after {_applied} chunk(s)", Ring.Left));
            }
            // A live right-hand neighbour holds back fewer than a credit batch of acknowledgements.
            int outstanding = _sent - _acknowledged;
            if (outstanding >= CreditBatch)
                certain.Add(($"{Ring.Describe(Ring.Right)} acknowledged none of the last {outstanding} chunk(s) sent to it in {seconds:0.#} s", Ring.Right));
            else if (outstanding > 0)
                uncertain.Add(($"{Ring.Describe(Ring.Right)} acknowledged none of the last {outstanding} chunk(s) sent to it in {seconds:0.#} s", Ring.Right));
            var all = certain.Concat(uncertain).ToList();
            var report = all.Count == 0 ? $"no progress for {seconds:0.#} s" : string.Join("; ", all.Select(p => p.Item1));
            var suspects = (certain.Count > 0 ? certain : uncertain).Select(p => p.Item2).Distinct().ToArray();
            return (report, suspects, certain.Count > 0);
        }

        private void Fail(string report, int[] suspects, bool certain = true) => engine.Fail(id, report, suspects, certain);

        private void Throw()
        {
            var missing = engine.Missing();
            var names = missing.Length == 0 ? "unknown" : string.Join(", ", missing.Select(Ring.Describe));
            var reports = string.Join("; ", engine._reports.Values.OrderBy(r => r.OriginRank).Select(r => $"rank {r.OriginRank}: {r.Report}"));
            throw new CollectiveFailedException(
                $"all-reduce failed on {Ring.Describe(Ring.Rank)} (ring generation {Generation}, collective {id}); missing: {names}. Reports: {reports}",
                missing);
        }
    }
}
