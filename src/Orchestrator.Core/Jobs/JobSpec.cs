namespace Orchestrator.Core.Jobs;

/// <summary>A validated job (PRODUCT.md section 3). Built only by <see cref="JobSpecParser"/>.</summary>
public sealed record JobSpec(
    string Name,
    string Model,
    DatasetSpec Dataset,
    int Workers,
    int DevicesPerWorker,
    int Epochs,
    long? MaxSteps,
    int BatchSizePerDevice,
    OptimizerSpec Optimizer,
    LrScheduleSpec LrSchedule,
    long Seed,
    CheckpointSpec Checkpoint,
    AllReduceSpec AllReduce,
    int MaxFailures,
    int? MinWorkers)
{
    /// <summary>Number of replicas: workers × devices per worker.</summary>
    public int WorldSize => Workers * DevicesPerWorker;

    /// <summary>Samples per optimizer step across all replicas.</summary>
    public int GlobalBatchSize => WorldSize * BatchSizePerDevice;
}

public sealed record DatasetSpec(string Name, string? Path);

public sealed record OptimizerSpec(string Type, double Lr, double Momentum, double WeightDecay, double Beta1, double Beta2, double Eps);

public sealed record LrScheduleSpec(int WarmupSteps);

public sealed record CheckpointSpec(int EverySteps, int Keep, string Metric);

public sealed record AllReduceSpec(int BucketBytes, string Transport);
