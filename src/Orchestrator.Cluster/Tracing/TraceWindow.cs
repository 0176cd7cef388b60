using Orchestrator.Cluster.Coordinator;
using Orchestrator.Core.Jobs;
using Orchestrator.Training.Engine;

namespace Orchestrator.Cluster.Tracing;

/// <summary>
/// Whether a job can be traced over steps <c>from</c> to <c>to</c> now: null, or the field at fault, why, and the kind of
/// refusal (<c>invalid</c>, <c>conflict</c>, <c>later</c>, as <see cref="Core.Protocol.JobProtocol.TraceRefused"/> says).
/// </summary>
public static class TraceWindow
{
    public static (string Field, string Reason, string Kind)? Check(JobRecord job, long from, long to)
    {
        if (from < 1) return ("from", $"must be a step number (1 or more), was {from}", "invalid");
        if (to < from) return ("to", $"must be at least from ({from}), was {to}", "invalid");
        if (to - from + 1 > StepTrace.MaxSteps) return ("to", $"a trace covers at most {StepTrace.MaxSteps} steps, {from}-{to} is {to - from + 1}", "invalid");
        if (job.State != JobState.Running) return ("", $"job {job.Id} is {job.State}: only a running job can be traced", "conflict");
        if (job.Progress is not { } progress) return ("", $"job {job.Id} has not reported a step yet; try again in a few seconds", "later");
        if (to > progress.TotalSteps) return ("to", $"the job has {progress.TotalSteps} steps, so step {to} is outside it", "invalid");
        if (from <= progress.Step) return ("from", $"step {from} has run already (the job is at step {progress.Step}); ask for later steps", "invalid");
        return null;
    }
}
