using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Logs;

/// <summary>
/// One job's log lines, bounded: at most <see cref="Limit"/> lines; past it the oldest quarter goes (a job that logs
/// forever keeps its recent lines, and <see cref="Dropped"/> says how many went). Every line gets the next sequence
/// number when it arrives, so a reader that follows the log asks for the lines after the last one it saw, and the
/// lines no longer kept are exactly those before the first one kept.
/// </summary>
public sealed class JobLog(int limit)
{
    private readonly List<JobProtocol.JobLogLine> _lines = [];

    public int Limit { get; } = limit >= 4 ? limit : throw new ArgumentOutOfRangeException(nameof(limit), "at least 4 lines");
    public IReadOnlyList<JobProtocol.JobLogLine> Lines => _lines;
    /// <summary>Lines no longer kept: every sequence number before the first line kept.</summary>
    public long Dropped => _lines.Count == 0 ? 0 : _lines[0].Seq - 1;
    public long LastSeq => _lines.Count == 0 ? 0 : _lines[^1].Seq;

    /// <summary>
    /// Appends lines as they arrived (their sequence numbers given here, their text bounded and their level one of the
    /// known ones); returns the lines as kept, and whether older lines went (whoever keeps the log in a file rewrites it).
    /// </summary>
    public (IReadOnlyList<JobProtocol.JobLogLine> Added, bool Trimmed) Append(IEnumerable<JobProtocol.JobLogLine> lines)
    {
        var added = new List<JobProtocol.JobLogLine>();
        foreach (var line in lines)
        {
            var kept = line with
            {
                Seq = LastSeq + 1,
                Text = JobProtocol.JobLogLine.Bounded(line.Text),
                Level = JobProtocol.JobLogLine.Levels.Contains(line.Level) ? line.Level : "info",
                Node = JobProtocol.JobLogLine.Bounded(line.Node),
            };
            _lines.Add(kept);
            added.Add(kept);
        }
        if (_lines.Count <= Limit) return (added, false);
        _lines.RemoveRange(0, _lines.Count - Limit * 3 / 4);
        return (added, true);
    }

    /// <summary>A line read back from the job's file, with the sequence number it was given then (a line out of order is skipped).</summary>
    public void Restore(JobProtocol.JobLogLine line)
    {
        if (line.Seq <= LastSeq) return;
        _lines.Add(line);
        if (_lines.Count > Limit) _lines.RemoveAt(0);
    }

    /// <summary>Up to <paramref name="page"/> lines after sequence number <paramref name="since"/> (of one rank, when given), and whether more follow.</summary>
    public (IReadOnlyList<JobProtocol.JobLogLine> Lines, bool More) After(long since, int page, int? rank = null)
    {
        var after = _lines.Where(l => l.Seq > since && (rank is null || l.Rank == rank)).Take(page + 1).ToList();
        return after.Count > page ? (after[..page], true) : (after, false);
    }
}
