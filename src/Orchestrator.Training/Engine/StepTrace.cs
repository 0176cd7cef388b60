using System.Diagnostics;

namespace Orchestrator.Training.Engine;

/// <summary>One timed phase of a traced step on this worker: Unix microseconds on this node's clock.</summary>
/// <param name="Bytes">What a bucket's all-reduce sent to the ring neighbour (-1 for other phases).</param>
public readonly record struct TraceSpan(string Name, long Step, long StartUs, long DurationUs, long Bytes = -1);

/// <summary>
/// Records the phases of the steps in a window that someone asked for (<c>orchestrator trace</c>), and nothing otherwise:
/// outside the window the engine pays one comparison per step and one per phase. The window is set from another thread
/// (the trainer's actor); the spans are recorded on the compute thread, which is the only one that calls
/// <see cref="BeginStep"/>, <see cref="Span"/> and <see cref="EndStep"/>. When the window's last step ends (or the run
/// ends inside the window), <see cref="Completed"/> gets its spans.
/// </summary>
public sealed class StepTrace
{
    /// <summary>Steps one trace may cover, and the spans it keeps at most (a bound on what it sends).</summary>
    public const int MaxSteps = 20, MaxSpans = 2000;

    private readonly long _originUs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
    private readonly long _originTicks = Stopwatch.GetTimestamp();
    private readonly object _gate = new();
    private (long From, long To, string Id)? _window;
    private (long From, long To, string Id)? _active;   // the window being recorded (compute thread only)
    private List<TraceSpan> _spans = [];
    private long _step;
    private long _stepStart;

    /// <summary>The spans of a finished window, with its id; called on the compute thread.</summary>
    public Action<string, IReadOnlyList<TraceSpan>>? Completed { get; set; }

    /// <summary>Asks for steps <paramref name="from"/> to <paramref name="to"/> (counted from 1, as a job's status counts them).</summary>
    public void Request(long from, long to, string id)
    {
        lock (_gate) _window = (from, to, id);
    }

    /// <summary>Whether step <paramref name="step"/> (counted from 1) is recorded.</summary>
    public bool Recording { get; private set; }

    public bool BeginStep(long step)
    {
        if (_active is null)
        {
            if (_window is null) return Recording = false;   // the common case: one read, no lock
            lock (_gate)
            {
                // A window whose first steps ran while the request was on its way is recorded from here; one that has
                // passed altogether ends at once, empty, so that nobody waits for it.
                if (_window is { } w && step >= w.From) { _active = w; _window = null; _spans = []; }
            }
            if (_active is { } passed && step > passed.To) { Finish(); return Recording = false; }
        }
        Recording = _active is { } a && step >= a.From && step <= a.To;
        if (Recording) { _step = step; _stepStart = Stopwatch.GetTimestamp(); }
        return Recording;
    }

    /// <summary>A phase that began at <paramref name="startTicks"/> (<see cref="Stopwatch.GetTimestamp"/>) and ends now.</summary>
    public void Span(string name, long startTicks, long bytes = -1) => Span(name, startTicks, Stopwatch.GetTimestamp(), bytes);

    public void Span(string name, long startTicks, long endTicks, long bytes)
    {
        if (!Recording) return;
        // The compute thread and, with overlapped reduction, the communication thread (its buckets) both add spans.
        lock (_gate)
        {
            if (_spans.Count >= MaxSpans) return;
            _spans.Add(new TraceSpan(name, _step, Micros(startTicks), (long)Stopwatch.GetElapsedTime(startTicks, endTicks).TotalMicroseconds, bytes));
        }
    }

    /// <summary>Ends the step: its own span, and the window's spans to <see cref="Completed"/> after its last step.</summary>
    public void EndStep(bool lastOfRun = false)
    {
        if (!Recording) return;
        Span("step", _stepStart);
        Recording = false;
        if (_active is { } a && (_step >= a.To || lastOfRun)) Finish();
    }

    /// <summary>The run ended (or failed) inside a window: what was recorded goes out.</summary>
    public void EndRun()
    {
        if (_active is not null) Finish();
    }

    private void Finish()
    {
        var (id, spans) = (_active!.Value.Id, _spans);
        _active = null;
        _spans = [];
        Completed?.Invoke(id, spans);
    }

    private long Micros(long ticks) => _originUs + (long)Stopwatch.GetElapsedTime(_originTicks, ticks).TotalMicroseconds;
}
