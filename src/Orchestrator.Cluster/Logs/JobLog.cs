using Orchestrator.Core.Protocol;

namespace Orchestrator.Cluster.Logs;

/// <summary>
/// One job's log lines, bounded: at most <see cref="Limit"/> lines and <see cref="ByteLimit"/> bytes of text; past either
/// the oldest lines go until a quarter is free (a job that logs forever keeps its recent lines, and <see cref="Dropped"/>
/// says how many went). Every line gets the next sequence number when it arrives, so a reader that follows the log asks
/// for the lines after the last one it saw, and the lines no longer kept are exactly those before the first one kept.
/// </summary>
public sealed class JobLog(int limit, long byteLimit = JobLog.DefaultByteLimit)
{
    /// <summary>A job's log text kept at most: 4 MiB.</summary>
    public const long DefaultByteLimit = 4L << 20;
    private readonly List<JobProtocol.JobLogLine> _lines = [];
    private long _bytes;

    public int Limit { get; } = limit >= 4 ? limit : throw new ArgumentOutOfRangeException(nameof(limit), "at least 4 lines");
    public long ByteLimit { get; } = byteLimit >= 4096 ? byteLimit : throw new ArgumentOutOfRangeException(nameof(byteLimit), "at least 4 KiB");
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
            _bytes += Size(kept);
            added.Add(kept);
        }
        if (_lines.Count <= Limit && _bytes <= ByteLimit) return (added, false);
        int drop = 0;
        while (drop < _lines.Count && (_lines.Count - drop > Limit * 3 / 4 || _bytes > ByteLimit * 3 / 4)) _bytes -= Size(_lines[drop++]);
        _lines.RemoveRange(0, drop);
        return (added, true);
    }

    /// <summary>What a line costs here: its text and node, in UTF-16 bytes as held, plus a record's overhead.</summary>
    private static long Size(JobProtocol.JobLogLine line) => 2L * (line.Text.Length + line.Node.Length) + 64;

    /// <summary>A line read back from the job's file, with the sequence number it was given then (a line out of order is skipped).</summary>
    public void Restore(JobProtocol.JobLogLine line)
    {
        if (line.Seq <= LastSeq) return;
        _lines.Add(line);
        _bytes += Size(line);
        while (_lines.Count > Limit || _bytes > ByteLimit)
        {
            _bytes -= Size(_lines[0]);
            _lines.RemoveAt(0);
        }
    }

    /// <summary>Up to <paramref name="page"/> lines after sequence number <paramref name="since"/> (of one rank, when given), and whether more follow.</summary>
    public (IReadOnlyList<JobProtocol.JobLogLine> Lines, bool More) After(long since, int page, int? rank = null)
    {
        var after = _lines.Where(l => l.Seq > since && (rank is null || l.Rank == rank)).Take(page + 1).ToList();
        return after.Count > page ? (after[..page], true) : (after, false);
    }
}
