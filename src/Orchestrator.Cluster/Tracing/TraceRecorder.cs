using Akka.Actor;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Tracing;

/// <summary>
/// Keeps the latest step trace of each job (a child of the job manager): started when the job manager sends a trace
/// request on to the job's runner, filled by the spans the runner relays from its workers, read by <c>orchestrator
/// trace</c>. In memory only (a trace is asked for and read within minutes); the latest <see cref="Jobs"/> jobs' traces.
/// </summary>
public sealed class TraceRecorder : ReceiveActor
{
    public const int Jobs = 16;

    public sealed record Started(string JobId, string TraceId, long From, long To, IReadOnlyList<string> Nodes);
    /// <summary>A part from the worker of rank <paramref name="Rank"/>, as the runner knows it.</summary>
    public sealed record Part(string JobId, int Rank, TrainingProtocol.TraceSpans Spans);

    private readonly Dictionary<string, (JobTrace Trace, long Used)> _traces = [];
    private long _clock;

    public static Props Props() => Akka.Actor.Props.Create(() => new TraceRecorder());

    public TraceRecorder()
    {
        Receive<Started>(m =>
        {
            if (_traces.Count >= Jobs && !_traces.ContainsKey(m.JobId)) _traces.Remove(_traces.MinBy(t => t.Value.Used).Key);
            _traces[m.JobId] = (new JobTrace(m.JobId, m.TraceId, m.From, m.To, m.Nodes), ++_clock);
        });
        Receive<Part>(m =>
        {
            if (_traces.TryGetValue(m.JobId, out var entry)) entry.Trace.Add(m.Rank, m.Spans.TraceId, m.Spans.Spans ?? [], m.Spans.Last);
        });
        Receive<JobProtocol.GetTrace>(m =>
        {
            if (_traces.TryGetValue(m.Id, out var entry)) Sender.Tell(entry.Trace.View());
            else Sender.Tell(new JobProtocol.TraceRefused(m.Id, "", $"no trace of job {m.Id} was asked for since the coordinator started"));
        });
    }
}
