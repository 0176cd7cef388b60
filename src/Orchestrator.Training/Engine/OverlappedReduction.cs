using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Training.Engine;

/// <summary>
/// Reduces a step's gradient bucket by bucket while backward is still running, on a communication thread
/// of the worker's own. TorchSharp has no gradient hooks, so readiness comes from the autograd graph itself:
/// every module that owns parameters directly (a "unit": a linear layer, a norm) gets an identity function
/// (<see cref="ReadyMark"/>) on its input in a forward pre-hook; libtorch runs that function's backward once
/// the gradient for the unit's input exists, and it runs a parameter's gradient accumulation, which it gives
/// the highest priority, before that. So when a unit's mark runs, its parameters' gradients are final.
///
/// Whether that holds for a given model (a parameter shared by two units, one used where its unit's input
/// plays no part) is checked, not assumed: the first step of a run is a probe that reduces after backward as
/// before and copies each unit's gradients when its mark runs; a unit whose gradients changed afterwards, or
/// whose mark never ran (a unit fed by data that needs no gradient), is trusted only once backward is over.
///
/// The gradient buffer lies in reverse registration order (<see cref="GradientBuffer"/>), so it fills from its
/// start: when a mark makes a prefix of it final, that prefix is summed over the local replicas into the
/// buffer and every bucket inside it is queued. A mark costs TorchSharp a managed autograd node each way
/// (measured: 26 marks added 5-15 % to the example transformer's step), so after the probe only the units
/// that end a bucket keep theirs, and only where the probe saw every unit before them in the buffer finish
/// first (so their mark vouches for the whole prefix). The queue is served in order, so every rank runs the same
/// collectives in the same order whatever its timing, and the sums are exactly those of reducing the whole
/// buffer after backward (same buckets, same additions). A reducer that is an <see cref="IBucketPipeline"/> (the
/// ring) gets each bucket as soon as it is queued, while earlier ones are still on the wire; any other, one
/// bucket at a time.
/// </summary>
public sealed class OverlappedReduction : IDisposable
{
    private readonly GradientBuffer _buffer;
    private readonly IReadOnlyList<Replica> _replicas;
    private readonly IGradientReducer _reducer;
    private readonly IBucketPipeline? _pipeline;
    private readonly int _bucketElements;
    private readonly int[] _unitOf;              // by layout position: the unit that owns that parameter (-1: none)
    private readonly int _units;
    private readonly List<Action> _unhook = [];
    private bool[] _trusted;
    private readonly bool[] _armed;               // units whose input gets a mark (all during the probe)
    private readonly int[] _unitEnd;              // by unit: one past the last layout position of its parameters
    private readonly List<int> _fired = [];       // the probe's marks in the order they ran
    private Dictionary<int, float[]?[]>? _probe;  // the first step: each unit's gradients as its mark ran
    private int _prefix;                          // layout positions [0, _prefix) are summed into the buffer
    private int _queued;                          // buckets queued this step
    private readonly BlockingCollection<(int Offset, int Length)> _queue = new();
    private readonly Thread _thread;
    private int _done;                            // buckets reduced this step (under _gate)
    private ExceptionDispatchInfo? _failure;
    private readonly object _gate = new();

    /// <summary>When the step's first bucket was queued (<see cref="Stopwatch.GetTimestamp"/>), 0 before.</summary>
    public long FirstQueuedAt { get; private set; }

    /// <summary>When the last step's gathering of what backward had not yet made final began and ended (for the step trace).</summary>
    public long GatherStarted { get; private set; }
    public long GatherEnded { get; private set; }

    /// <summary>Buckets that left before backward ended in the last step (for tests and the step trace).</summary>
    public int QueuedDuringBackward { get; private set; }

    public OverlappedReduction(GradientBuffer buffer, IReadOnlyList<Replica> replicas, IGradientReducer reducer, int bucketElements)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketElements, 1);
        _buffer = buffer;
        _replicas = replicas;
        _reducer = reducer;
        _bucketElements = bucketElements;
        // Units of the replica whose backward runs last: the one the marks are on.
        var model = replicas[^1].Model;
        var parameterIndex = replicas[^1].Parameters.Select((p, i) => (p, i)).ToDictionary(x => x.p.Handle, x => x.i);
        var unitOfParameter = new int[parameterIndex.Count];
        Array.Fill(unitOfParameter, -1);
        int unit = 0;
        foreach (var (_, module) in model.named_modules())
        {
            var own = module.named_parameters(recurse: false).Select(np => np.parameter).ToList();
            if (own.Count == 0 || module is not nn.Module<Tensor, Tensor> unitModule) continue;
            foreach (var p in own)
                if (parameterIndex.TryGetValue(p.Handle, out var index) && unitOfParameter[index] < 0) unitOfParameter[index] = unit;
            int id = unit++;
            var hook = unitModule.register_forward_pre_hook((_, input) => Listener is null || !_armed![id] || !input.requires_grad ? input : ReadyMark.apply(input, id));
            _unhook.Add(() => hook.remove());
        }
        _units = unit;
        _unitOf = Enumerable.Range(0, buffer.Count).Select(position => unitOfParameter[buffer.ParameterAt(position)]).ToArray();
        _trusted = new bool[_units];
        _armed = Enumerable.Repeat(true, _units).ToArray();
        _unitEnd = new int[_units];
        for (int position = 0; position < _unitOf.Length; position++)
            if (_unitOf[position] >= 0) _unitEnd[_unitOf[position]] = position + 1;
        _pipeline = reducer as IBucketPipeline;
        _thread = new Thread(_pipeline is null ? Serve : ServePipelined) { IsBackground = true, Name = "gradient-reduction" };
        _thread.Start();
    }

    /// <summary>Which units' marks proved reliable in the probe step (null before it).</summary>
    public IReadOnlyList<bool>? Trusted { get; private set; }

    /// <summary>
    /// Runs the last replica's forward and backward (<paramref name="backward"/>) with the marks armed, queueing
    /// buckets as they become final, and queues the rest after it. The first call is the probe.
    /// </summary>
    public double Backward(Func<double> backward)
    {
        lock (_gate) _done = 0;
        _prefix = 0;
        _queued = 0;
        FirstQueuedAt = 0;
        bool probing = Trusted is null;
        if (probing) _probe = new Dictionary<int, float[]?[]>();
        double loss;
        Listener = probing ? Probe : OnReady;
        ListenerFailure = null;
        try { loss = backward(); }
        finally { Listener = null; }
        ListenerFailure?.Throw();
        QueuedDuringBackward = _queued;
        if (probing) Settle();
        GatherStarted = Stopwatch.GetTimestamp();
        Advance(_buffer.Count);
        GatherEnded = Stopwatch.GetTimestamp();
        return loss;
    }

    /// <summary>Waits until every queued bucket is reduced; a failed collective is thrown here, as it was on its thread.</summary>
    public void Wait(CancellationToken cancellation)
    {
        lock (_gate)
        {
            while (_done < _queued && _failure is null)
            {
                cancellation.ThrowIfCancellationRequested();
                Monitor.Wait(_gate, 100);
            }
        }
        _failure?.Throw();
    }

    /// <summary>An armed unit's mark: the buffer up to the end of its parameters is final (the probe vouched for that).</summary>
    private void OnReady(int unit)
    {
        if (unit >= _units || !_armed[unit]) return;
        if (_unitEnd[unit] > _prefix) Advance(_unitEnd[unit]);
    }

    private void Probe(int unit)
    {
        if (unit >= _units || _probe!.ContainsKey(unit)) return;
        _fired.Add(unit);
        var parameters = _replicas[^1].Parameters;
        _probe[unit] = Enumerable.Range(0, _buffer.Count).Where(position => _unitOf[position] == unit)
            .Select(position => GradientBuffer.Snapshot(parameters[_buffer.ParameterAt(position)])).ToArray();
    }

    /// <summary>After the probe's backward: a unit is trusted when its gradients then equal what they were at its mark.</summary>
    private void Settle()
    {
        var parameters = _replicas[^1].Parameters;
        var trusted = new bool[_units];
        foreach (var (unit, seen) in _probe!)
        {
            var positions = Enumerable.Range(0, _buffer.Count).Where(position => _unitOf[position] == unit).ToArray();
            trusted[unit] = positions.Select((position, i) => (GradientBuffer.Snapshot(parameters[_buffer.ParameterAt(position)]), seen[i]))
                .All(pair => pair.Item1 is not null && pair.Item2 is not null && pair.Item1.AsSpan().SequenceEqual(pair.Item2));
        }
        _trusted = trusted;
        Trusted = trusted;
        _probe = null;
        // Keep the marks of units that end a bucket, where every unit before them in the buffer is trusted and finished
        // no later in the probe: then their mark alone says the whole prefix is final.
        var order = _fired.Select((unit, i) => (unit, i)).ToDictionary(x => x.unit, x => x.i);
        Array.Fill(_armed, false);
        int total = _buffer.Values.Length;
        for (long bucketEnd = Math.Min(_bucketElements, total); bucketEnd <= total && total > 0; bucketEnd = Math.Min(bucketEnd + _bucketElements, total))
        {
            int last = LayoutPositionOf((int)bucketEnd - 1);
            int unit = _unitOf[last];
            bool vouches = unit >= 0 && trusted[unit] && order.TryGetValue(unit, out var at) && Enumerable.Range(0, _unitEnd[unit]).All(position =>
                _unitOf[position] is var u && u >= 0 && trusted[u] && order.TryGetValue(u, out var earlier) && earlier <= at);
            if (vouches) _armed[unit] = true;
            if (bucketEnd == total) break;
        }
    }

    /// <summary>The layout position whose parameter holds buffer element <paramref name="element"/>.</summary>
    private int LayoutPositionOf(int element)
    {
        int low = 0, high = _buffer.Count - 1;
        while (low < high)
        {
            int mid = (low + high + 1) / 2;
            if (_buffer.OffsetOf(mid) <= element) low = mid; else high = mid - 1;
        }
        return low;
    }

    /// <summary>Sums layout positions [_prefix, <paramref name="end"/>) into the buffer and queues every bucket now complete.</summary>
    private void Advance(int end)
    {
        _buffer.Gather(_replicas, _prefix, end);
        _prefix = end;
        int filled = _buffer.OffsetOf(end), total = _buffer.Values.Length;
        while (_queued * (long)_bucketElements < total)
        {
            int offset = _queued * _bucketElements, length = Math.Min(_bucketElements, total - offset);
            if (offset + length > filled) break;
            if (FirstQueuedAt == 0) FirstQueuedAt = Stopwatch.GetTimestamp();
            _queued++;
            _queue.Add((offset, length));
            _pipeline?.Nudge();   // the communication thread may be waiting on an earlier bucket with room for this one
        }
    }

    private void Serve()
    {
        foreach (var (offset, length) in _queue.GetConsumingEnumerable())
        {
            bool failed;
            lock (_gate) failed = _failure is not null;
            if (!failed)
            {
                try { _reducer.SumAcrossWorkers(_buffer.Values.Slice(offset, length)); }
                catch (Exception ex) { Failed(ex); }
            }
            Reduced();
        }
    }

    /// <summary>
    /// Begins each bucket as it is queued, with up to the reducer's <see cref="IBucketPipeline.InFlight"/> on the wire, and
    /// awaits them oldest first; while the oldest is under way and there is room, a newly queued bucket is begun at once.
    /// </summary>
    private void ServePipelined()
    {
        var pipeline = _pipeline!;
        var pending = new Queue<long>(pipeline.InFlight);
        Func<bool> bucketQueued = () => _queue.Count > 0;   // made once: Await is called per bucket
        while (true)
        {
            if (pending.Count < pipeline.InFlight && _queue.TryTake(out var next, pending.Count == 0 ? Timeout.Infinite : 0))
            {
                bool failed;
                lock (_gate) failed = _failure is not null;
                if (failed) { Reduced(); continue; }
                try { pending.Enqueue(pipeline.Begin(_buffer.Values.Slice(next.Offset, next.Length), next.Offset / _bucketElements)); }
                catch (Exception ex) { Failed(ex); Reduced(); }
                continue;
            }
            if (pending.Count == 0) return;   // nothing on the wire and the queue completed: disposed
            try
            {
                if (!pipeline.Await(pending.Peek(), pending.Count < pipeline.InFlight ? bucketQueued : null)) continue;
                pending.Dequeue();
                Reduced();
            }
            catch (Exception ex)
            {
                Failed(ex);
                for (; pending.Count > 0; pending.Dequeue()) Reduced();
            }
        }
    }

    /// <summary>The first failure of the step's reductions, thrown on the compute thread by <see cref="Wait"/>.</summary>
    private void Failed(Exception ex)
    {
        lock (_gate) _failure ??= ExceptionDispatchInfo.Capture(ex);
    }

    /// <summary>One more of the step's buckets is over (summed, or given up after a failure): the compute thread may be waiting for it.</summary>
    private void Reduced()
    {
        lock (_gate)
        {
            _done++;
            Monitor.PulseAll(_gate);
        }
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        foreach (var unhook in _unhook) unhook();
    }

    /// <summary>Told a unit's number when its mark's backward runs; set only while this worker's last replica runs backward.</summary>
    [ThreadStatic] private static Action<int>? Listener;
    [ThreadStatic] private static ExceptionDispatchInfo? ListenerFailure;

    /// <summary>The identity on a unit's input, whose backward says the unit's gradients are in.</summary>
    private sealed class ReadyMark : autograd.SingleTensorFunction<ReadyMark>
    {
        public override string Name => "OrchestratorReadyMark";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("unit", vars[1]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            // An exception must not cross libtorch's engine (it ends the process): it is kept and thrown after backward.
            try { Listener?.Invoke((int)ctx.get_data("unit")); }
            catch (Exception ex) { ListenerFailure ??= ExceptionDispatchInfo.Capture(ex); }
            return [grad_output, null!];   // one gradient per argument: the input's passes through, the unit number has none
        }
    }
}
