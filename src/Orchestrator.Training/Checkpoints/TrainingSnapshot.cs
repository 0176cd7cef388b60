using System.Globalization;
using Orchestrator.Core.Jobs;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Safetensors;

namespace Orchestrator.Training.Checkpoints;

/// <summary>
/// Where training stands: <paramref name="Step"/> optimizer steps are done, and the next one is step
/// <paramref name="EpochStep"/> of epoch <paramref name="Epoch"/> (both from 0) with global batch
/// <paramref name="GlobalBatch"/>. With the job's seed this is the whole sampler position: each
/// epoch's order is drawn from (seed, epoch).
/// </summary>
public sealed record TrainingPosition(long Step, int Epoch, int EpochStep, int GlobalBatch);

/// <summary>
/// Everything needed to continue a run exactly: the weights (safetensors, PyTorch names), the
/// optimizer's state and the CPU generator (safetensors), and the position. Held as encoded files, so
/// that capturing it on the compute thread is one copy and the rest (sending, writing) happens elsewhere.
/// </summary>
public sealed record TrainingSnapshot(string Job, string Model, TrainingPosition Position, int Generation, string Digest,
    byte[] ModelFile, byte[] OptimizerFile)
{
    public static TrainingSnapshot Capture(Replica replica, JobSpec job, TrainingPosition position, int generation, string digest)
    {
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["job"] = job.Name,
            ["model"] = job.Model,
            ["step"] = position.Step.ToString(CultureInfo.InvariantCulture),
            ["epoch"] = position.Epoch.ToString(CultureInfo.InvariantCulture),
        };
        var model = SafetensorsCodec.Encode(ModelWeights.Export(replica.Model), metadata);
        var optimizer = SafetensorsCodec.Encode(OptimizerState.Export(replica.Optimizer, replica.Model),
            new Dictionary<string, string> { ["optimizer"] = job.Optimizer.Type });
        return new TrainingSnapshot(job.Name, job.Model, position, generation, digest, model, optimizer);
    }

    /// <summary>Loads weights and optimizer state into a replica built for the same job; the files are decoded strictly first.</summary>
    public void RestoreInto(Replica replica)
    {
        var model = SafetensorsCodec.Decode(ModelFile);
        var optimizer = SafetensorsCodec.Decode(OptimizerFile);
        ModelWeights.Import(replica.Model, model);
        OptimizerState.Import(replica.Optimizer, replica.Model, optimizer);
    }

    /// <summary>
    /// Where a job continues from this snapshot. The same global batch continues exactly; a different
    /// one (the job lost workers and goes on with fewer) continues in the same epoch after the samples
    /// already seen, rounded down to a whole step of the new batch (up to one step's samples repeat).
    /// </summary>
    public TrainingPosition ContinueWith(int globalBatch)
    {
        if (globalBatch == Position.GlobalBatch) return Position;
        long seen = (long)Position.EpochStep * Position.GlobalBatch;
        return Position with { EpochStep = (int)(seen / globalBatch), GlobalBatch = globalBatch };
    }
}
