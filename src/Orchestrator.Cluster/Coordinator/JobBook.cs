using System.Collections.Immutable;
using Orchestrator.Core.Jobs;
using Orchestrator.Core.Protocol;
using static Orchestrator.Core.Protocol.JobEvents;

namespace Orchestrator.Cluster.Coordinator;

public enum JobState { Queued, Running, Recovering, Completed, Failed, Cancelled }

/// <summary>Where a running job is, from its rank-0 worker's last report. Kept in memory only.</summary>
public sealed record JobProgress(int Epoch, int Epochs, long Step, long TotalSteps, double Loss, double SamplesPerSecond,
    IReadOnlyList<JobProtocol.WorkerStat> Workers);

/// <summary>One job as the job manager knows it: its spec, its state and what that state carries.</summary>
public sealed record JobRecord(
    string Id,
    long Sequence,
    string Name,
    string SpecJson,
    int Workers,
    int DevicesPerWorker,
    int Epochs,
    JobState State,
    DateTimeOffset SubmittedAt,
    DateTimeOffset? StartedAt = null,
    DateTimeOffset? EndedAt = null,
    ImmutableList<string>? Nodes = null,
    string? Error = null,
    double? Accuracy = null,
    double? FinalLoss = null,
    long Steps = 0,
    string? Weights = null,
    int Failures = 0,
    JobProgress? Progress = null,
    int MaxFailures = 0,
    int MinWorkers = 0,
    IReadOnlyDictionary<string, double>? Metrics = null,
    string Model = "",
    string? Package = null,
    int Attempts = 0,
    string? Interruption = null)
{
    /// <summary>The ring generation of the next start: one more than every start so far, so that an old ring's messages are told apart.</summary>
    public int NextGeneration => Attempts + 1;

    public int DevicesRequested => Workers * DevicesPerWorker;
    public bool IsActive => State is JobState.Queued or JobState.Running or JobState.Recovering;
    public ImmutableList<string> AssignedNodes => Nodes ?? [];
}

/// <summary>
/// The job manager's state: every job ever accepted, built only by applying journal events, so that
/// recovery and live operation cannot disagree. Immutable; <see cref="Apply"/> returns the next book.
/// </summary>
public sealed record JobBook(ImmutableSortedDictionary<long, JobRecord> BySequence, ImmutableDictionary<string, long> SequenceById, long LastSequence)
{
    public static readonly JobBook Empty = new(ImmutableSortedDictionary<long, JobRecord>.Empty, ImmutableDictionary<string, long>.Empty, 0);

    public IEnumerable<JobRecord> Jobs => BySequence.Values;

    /// <summary>Queued jobs, first in first out.</summary>
    public IEnumerable<JobRecord> Queue => BySequence.Values.Where(j => j.State == JobState.Queued);

    public JobRecord? Find(string id) => SequenceById.TryGetValue(id, out var seq) ? BySequence[seq] : null;

    /// <summary>The job each submission key (a client's Idempotency-Key) was recorded for: a retried submit finds its job here.</summary>
    public ImmutableDictionary<string, string> IdBySubmissionKey { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>The job recorded for <paramref name="key"/>, if a submit with that key was recorded.</summary>
    public JobRecord? FindSubmission(string? key) => key is not null && IdBySubmissionKey.TryGetValue(key, out var id) ? Find(id) : null;

    /// <summary>Ids are the job's name and its submit number: readable, unique, and safe as folder names.</summary>
    public static string IdFor(string name, long sequence) => $"{name}-{sequence}";

    /// <summary>A job just accepted, whose spec the caller parsed already (a job file is parsed once per process).</summary>
    public JobBook Apply(JobSubmitted e, JobSpec spec) => Add(e, spec);

    public JobBook Apply(IOrchestratorMessage evt) => evt switch
    {
        JobSubmitted e => Add(e, null),
        JobStarted e => Update(e.Id, j => j with
        {
            State = JobState.Running, StartedAt = j.StartedAt ?? At(e.AtMs), Nodes = [.. e.Workers], Attempts = j.Attempts + 1,
        }),
        JobRecovering e => Update(e.Id, j => j with { State = JobState.Recovering, Nodes = [], Failures = j.Failures + 1, Interruption = e.Reason }),
        JobCompleted e => Update(e.Id, j => j with
        {
            State = JobState.Completed, EndedAt = At(e.AtMs), Accuracy = double.IsNaN(e.Accuracy) ? null : e.Accuracy, FinalLoss = double.IsNaN(e.Loss) ? null : e.Loss, Metrics = e.Metrics, Steps = e.Steps, Weights = e.WeightsPath,
        }),
        JobFailed e => Update(e.Id, j => j with { State = JobState.Failed, EndedAt = At(e.AtMs), Error = e.Error }),
        JobCancelled e => Update(e.Id, j => j with { State = JobState.Cancelled, EndedAt = At(e.AtMs) }),
        JobRequeued e => Update(e.Id, j => j with { State = JobState.Queued, Nodes = [], Error = null, Interruption = e.Reason }),
        _ => throw new ArgumentException($"not a job event: {evt.GetType().Name}"),
    };

    public JobBook WithProgress(string id, JobProgress progress) =>
        Find(id) is { State: JobState.Running } ? Update(id, j => j with { Progress = progress }) : this;

    /// <summary>Jobs waiting for workers: recovering ones first (they already hold progress), then the queue; each in submit order.</summary>
    public IEnumerable<JobRecord> Waiting =>
        BySequence.Values.Where(j => j.State == JobState.Recovering).Concat(Queue);

    private JobBook Add(JobSubmitted e, JobSpec? parsed)
    {
        JobRecord record;
        try
        {
            var spec = parsed ?? JobSpecParser.Parse(e.SpecJson);
            record = new JobRecord(e.Id, e.Sequence, spec.Name, e.SpecJson, spec.Workers, spec.DevicesPerWorker, spec.Epochs, JobState.Queued, At(e.AtMs),
                MaxFailures: spec.MaxFailures, MinWorkers: spec.MinWorkers ?? spec.Workers, Model: spec.Model,
                Package: spec.Package?.Source is { } source && source.StartsWith(JobSpecParser.PackageHashPrefix, StringComparison.Ordinal)
                    ? source[JobSpecParser.PackageHashPrefix.Length..] : null);
        }
        catch (JobSpecException ex)
        {
            // Accepted by an older version whose rules differ: keep the job (nothing accepted is lost), failed with the reason.
            record = new JobRecord(e.Id, e.Sequence, e.Id, e.SpecJson, 0, 0, 0, JobState.Failed, At(e.AtMs),
                Error: $"the job file is no longer valid: field '{ex.Field}': {ex.Problem}");
        }
        return new JobBook(BySequence.SetItem(e.Sequence, record), SequenceById.SetItem(e.Id, e.Sequence), Math.Max(LastSequence, e.Sequence))
        {
            IdBySubmissionKey = e.SubmissionKey is { } key ? IdBySubmissionKey.SetItem(key, e.Id) : IdBySubmissionKey,
        };
    }

    /// <summary>The book as a snapshot (progress, which is kept in memory only, left out).</summary>
    public JobBookSnapshot ToSnapshot()
    {
        var keys = IdBySubmissionKey.ToDictionary(kv => kv.Value, kv => kv.Key);
        return new JobBookSnapshot(LastSequence, Jobs.Select(j => new JobSnapshot(
            j.Id, j.Sequence, j.Name, j.SpecJson, j.Workers, j.DevicesPerWorker, j.Epochs, j.State.ToString(),
            j.SubmittedAt.ToUnixTimeMilliseconds(), j.StartedAt?.ToUnixTimeMilliseconds(), j.EndedAt?.ToUnixTimeMilliseconds(),
            j.AssignedNodes, j.Error, j.Accuracy, j.FinalLoss, j.Steps, j.Weights, j.Failures, j.MaxFailures, j.MinWorkers, j.Metrics,
            j.Model, j.Package, j.Attempts, j.Interruption, keys.GetValueOrDefault(j.Id))).ToList());
    }

    /// <summary>The book a snapshot holds; events after the snapshot's position are applied to it as usual.</summary>
    public static JobBook FromSnapshot(JobBookSnapshot snapshot)
    {
        var records = snapshot.Jobs.Select(j => new JobRecord(j.Id, j.Sequence, j.Name, j.SpecJson, j.Workers, j.DevicesPerWorker, j.Epochs,
            Enum.Parse<JobState>(j.State), At(j.SubmittedAtMs), j.StartedAtMs is { } s ? At(s) : null, j.EndedAtMs is { } e ? At(e) : null,
            [.. j.Nodes], j.Error, j.Accuracy, j.FinalLoss, j.Steps, j.Weights, j.Failures, null, j.MaxFailures, j.MinWorkers, j.Metrics,
            j.Model, j.Package, j.Attempts, j.Interruption)).ToList();
        return new JobBook(records.ToImmutableSortedDictionary(r => r.Sequence, r => r), records.ToImmutableDictionary(r => r.Id, r => r.Sequence),
            snapshot.LastSequence)
        {
            IdBySubmissionKey = snapshot.Jobs.Where(j => j.SubmissionKey is not null).ToImmutableDictionary(j => j.SubmissionKey!, j => j.Id),
        };
    }

    private JobBook Update(string id, Func<JobRecord, JobRecord> change) =>
        SequenceById.TryGetValue(id, out var seq) ? this with { BySequence = BySequence.SetItem(seq, change(BySequence[seq])) } : this;

    private static DateTimeOffset At(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);
}
