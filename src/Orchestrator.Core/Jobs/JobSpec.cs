namespace Orchestrator.Core.Jobs;

/// <summary>
/// A validated job (README: Job files). Built only by <see cref="JobSpecParser"/>. <see cref="Model"/>
/// names what is trained: a built-in workload (<c>mlp</c>, <c>lenet</c>, with <see cref="Dataset"/>), or
/// the type of a package's workload (<see cref="Package"/>), which reads its data itself.
/// </summary>
public sealed record JobSpec(
    string Name,
    string Model,
    DatasetSpec? Dataset,
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
    int? MinWorkers,
    WorkloadPackageSpec? Package = null)
{
    /// <summary>Whether the job trains a built-in workload (<see cref="Model"/> names it) rather than a package's.</summary>
    public bool IsBuiltIn => Package is null;

    /// <summary>Number of replicas: workers × devices per worker.</summary>
    public int WorldSize => Workers * DevicesPerWorker;

    /// <summary>Samples per optimizer step across all replicas.</summary>
    public int GlobalBatchSize => WorldSize * BatchSizePerDevice;
}

public sealed record DatasetSpec(string Name, string? Path);

/// <param name="ClipGradNorm">Clip the reduced gradient to this global L2 norm before the step (null: no clipping).</param>
public sealed record OptimizerSpec(string Type, double Lr, double Momentum, double WeightDecay, double Beta1, double Beta2, double Eps,
    double? ClipGradNorm = null);

/// <summary>Linear warmup over <paramref name="WarmupSteps"/>, then constant (<c>none</c>) or a cosine decay to <paramref name="MinLr"/> by the last step.</summary>
public sealed record LrScheduleSpec(int WarmupSteps, string Decay = "none", double MinLr = 0);

/// <param name="Metric">The held-out metric that ranks checkpoints; null: the workload's own choice (accuracy for the built-ins).</param>
public sealed record CheckpointSpec(int EverySteps, int Keep, string? Metric);

/// <summary>
/// A workload from a package: <paramref name="Source"/> is a folder or .zip of a build's output (as
/// written in the job file) or <c>sha256:&lt;hex&gt;</c> once uploaded; <paramref name="Type"/> the
/// workload's full type name; <paramref name="ArgsJson"/> its arguments, a JSON object;
/// <paramref name="BaseDirectory"/> where relative paths among the arguments are taken from (the job
/// file's folder when the client read it from a file; null: the worker's current folder).
/// </summary>
public sealed record WorkloadPackageSpec(string Source, string Type, string ArgsJson, string? BaseDirectory = null);

/// <summary>
/// The gradient all-reduce: bucket size, link (<see cref="RingLinkKind"/>), how values travel
/// (<c>none</c>: float32; <c>bf16</c>, <c>fp16</c>: rounded to 16 bits, summed in float32), and the link's chunk
/// size, window and credit batch (the link's defaults unless the job file sets them); <paramref name="Overlap"/>:
/// reduce buckets while backward still runs; <paramref name="InFlight"/>: how many buckets may be on the ring at once.
/// </summary>
public sealed record AllReduceSpec(int BucketBytes, string Transport, string Compression = "none", int ChunkBytes = 0, int Window = 0, int CreditBatch = 0,
    bool Overlap = true, int InFlight = AllReduceSpec.DefaultInFlight)
{
    public const int DefaultInFlight = 2;
    public const int MaxInFlight = 8;

    public RingLinkKind Link => RingLinkKind.Named(Transport);
    public int EffectiveChunkBytes => ChunkBytes > 0 ? ChunkBytes : Link.DefaultChunkBytes;
    public int EffectiveWindow => Window > 0 ? Window : Link.DefaultWindow;
    public int EffectiveCreditBatch => CreditBatch > 0 ? CreditBatch : Math.Max(1, EffectiveWindow / 4);
}
