using MessagePack;

namespace Orchestrator.Core.Protocol;

/// <summary>Between a job runner (coordinator) and the worker agents that train its replicas.</summary>
public static class TrainingProtocol
{
    /// <summary>Runner → agent: train this job as <paramref name="Rank"/> of <paramref name="WorldSize"/> workers.</summary>
    [MessagePackObject]
    public sealed record StartTraining(
        [property: Key(0)] string JobId,
        [property: Key(1)] string SpecJson,
        [property: Key(2)] int Generation,
        [property: Key(3)] int Rank,
        [property: Key(4)] int WorldSize) : IOrchestratorMessage;

    /// <summary>Agent → runner: the job's data is loaded and training has begun on this node.</summary>
    [MessagePackObject]
    public sealed record TrainingStarted([property: Key(0)] string JobId, [property: Key(1)] string Node) : IOrchestratorMessage;

    /// <summary>Agent → runner, about once a second: where training is. Loss is the mean since the last report.</summary>
    [MessagePackObject]
    public sealed record TrainingProgress(
        [property: Key(0)] string JobId,
        [property: Key(1)] string Node,
        [property: Key(2)] int Epoch,
        [property: Key(3)] int Epochs,
        [property: Key(4)] long Step,
        [property: Key(5)] long TotalSteps,
        [property: Key(6)] double Loss,
        [property: Key(7)] double SamplesPerSecond) : IOrchestratorMessage;

    /// <summary>Agent → runner: the last step is done; held-out metrics and where the final weights are.</summary>
    [MessagePackObject]
    public sealed record TrainingCompleted(
        [property: Key(0)] string JobId,
        [property: Key(1)] string Node,
        [property: Key(2)] double Accuracy,
        [property: Key(3)] double Loss,
        [property: Key(4)] long Steps,
        [property: Key(5)] int Epochs,
        [property: Key(6)] double SamplesPerSecond,
        [property: Key(7)] string WeightsPath) : IOrchestratorMessage;

    /// <summary>Agent → runner: training could not go on; <paramref name="Error"/> says why, for the job's status.</summary>
    [MessagePackObject]
    public sealed record TrainingFailed([property: Key(0)] string JobId, [property: Key(1)] string Node, [property: Key(2)] string Error) : IOrchestratorMessage;

    /// <summary>Runner → agent: stop this job (cancelled, or the job failed elsewhere).</summary>
    [MessagePackObject]
    public sealed record StopTraining([property: Key(0)] string JobId) : IOrchestratorMessage;

    /// <summary>Agent → runner and registry: the job's compute has ended on this node; its devices are free.</summary>
    [MessagePackObject]
    public sealed record TrainingStopped([property: Key(0)] string JobId, [property: Key(1)] string Node) : IOrchestratorMessage;
}
