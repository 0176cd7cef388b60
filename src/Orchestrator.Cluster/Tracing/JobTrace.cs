using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Tracing;

/// <summary>
/// The trace of one job's steps as its workers send it: bounded to <see cref="SpanLimit"/> spans in all (what fits a
/// frame), shared equally among the ranks (a rank past its share loses its later spans rather than crowding the others
/// out), parts accepted only for this trace's id and from its ranks, a rank complete after its last part.
/// </summary>
public sealed class JobTrace(string jobId, string traceId, long from, long to, IReadOnlyList<string> nodes)
{
    public const int SpanLimit = 2000;
    private readonly bool[] _complete = new bool[nodes.Count];
    private readonly int[] _kept = new int[nodes.Count];
    private readonly List<JobProtocol.TraceSpanView> _spans = [];
    private readonly int _share = SpanLimit / Math.Max(nodes.Count, 1);

    public string TraceId { get; } = traceId;
    public bool IsComplete => _complete.All(c => c);

    /// <summary>A part from <paramref name="rank"/>; false when it is not this trace's (an old trace's, or a rank it does not have).</summary>
    public bool Add(int rank, string traceId, IReadOnlyList<JobProtocol.TraceSpanView> spans, bool last)
    {
        if (traceId != TraceId || rank < 0 || rank >= _complete.Length || _complete[rank]) return false;
        foreach (var span in spans)
        {
            if (_kept[rank] >= _share) break;
            if (span is not { Name: not null } || span.Step < from || span.Step > to || span.DurationUs < 0) continue;
            _spans.Add(span with { Rank = rank, Name = span.Name.Length > 64 ? span.Name[..64] : span.Name });
            _kept[rank]++;
        }
        if (last) _complete[rank] = true;
        return true;
    }

    public JobProtocol.TraceResult View() => new(jobId, TraceId, from, to,
        nodes.Select((node, rank) => new JobProtocol.TraceRank(rank, node, _complete[rank])).ToList(), _spans.ToList());
}
