using Akka.Event;

namespace Orchestrator.Cluster.Logs;

/// <summary>The node's own log line that goes with a line of a job's log, and the job log's name for its level.</summary>
public static class JobLogLevels
{
    public static string Name(LogLevel level) => level switch { LogLevel.ErrorLevel => "error", LogLevel.WarningLevel => "warning", _ => "info" };

    /// <summary>Writes <c>job &lt;id&gt;: &lt;text&gt;</c> to the node's log (the text as an argument, so braces in it stay text).</summary>
    public static void Job(this ILoggingAdapter log, LogLevel level, string jobId, string text)
    {
        switch (level)
        {
            case LogLevel.ErrorLevel: log.Error("job {0}: {1}", jobId, text); break;
            case LogLevel.WarningLevel: log.Warning("job {0}: {1}", jobId, text); break;
            default: log.Info("job {0}: {1}", jobId, text); break;
        }
    }
}
