using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Orchestrator.Core.Jobs;
using Orchestrator.Core.Settings;
using Orchestrator.Training.Data;
using Orchestrator.Training.Devices;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Models;
using static Orchestrator.Core.Protocol.TrainingProtocol;
using LocalProgress = Orchestrator.Training.Engine.TrainingProgress;
using ProgressReport = Orchestrator.Core.Protocol.TrainingProtocol.TrainingProgress;

namespace Orchestrator.Cluster.Worker;

/// <summary>
/// Trains one job on this node. The compute runs on a thread this actor starts and owns, never on
/// its mailbox, so <see cref="StopTraining"/> is seen while a step runs. Progress, the result and
/// failures go to the parent (the worker agent) as protocol messages; the actor stops itself when
/// the compute thread has ended, which is the agent's signal that the devices are free.
/// </summary>
public sealed class Trainer : ReceiveActor
{
    private readonly CancellationTokenSource _cancel = new();

    public static Props Props(StartTraining start, JobSpec spec, string node, string outputDir, WorkerSettings settings) =>
        Akka.Actor.Props.Create(() => new Trainer(start, spec, node, outputDir, settings));

    public Trainer(StartTraining start, JobSpec spec, string node, string outputDir, WorkerSettings settings)
    {
        var parent = Context.Parent;
        var self = Self;
        var jobId = start.JobId;

        Task.Factory.StartNew(() => Train(spec, jobId, node, outputDir, settings, parent, _cancel.Token),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .PipeTo(self, self,
                success: result => (object)result,
                failure: ex => new ComputeFailed(ex));

        Receive<StopTraining>(_ => _cancel.Cancel());
        Receive<TrainingCompleted>(done =>
        {
            parent.Tell(done);
            Context.Stop(Self);
        });
        Receive<ComputeFailed>(failed =>
        {
            var ex = failed.Exception is AggregateException { InnerException: { } inner } ? inner : failed.Exception;
            if (ex is OperationCanceledException)
                Context.GetLogger().Info("job {0}: training stopped on request", jobId);
            else
            {
                Context.GetLogger().Error(ex, "job {0}: training failed", jobId);
                parent.Tell(new TrainingFailed(jobId, node, Describe(ex)));
            }
            Context.Stop(Self);
        });
    }

    protected override void PostStop() => _cancel.Cancel();

    private static TrainingCompleted Train(JobSpec spec, string jobId, string node, string outputDir, WorkerSettings settings,
        IActorRef parent, CancellationToken cancellation)
    {
        var device = DeviceSelector.Resolve(settings.Device);
        TorchSharp.torch.set_num_threads(settings.Threads > 0 ? settings.Threads : Environment.ProcessorCount);
        var data = ImageDataset.Load(DatasetLocator.Locate(spec.Dataset));
        cancellation.ThrowIfCancellationRequested();
        parent.Tell(new TrainingStarted(jobId, node));

        var throttle = Stopwatch.StartNew();
        var progress = new SynchronousProgress<LocalProgress>(p =>
        {
            if (throttle.Elapsed < settings.ProgressInterval && p.Step < p.TotalSteps) return;
            throttle.Restart();
            parent.Tell(new ProgressReport(jobId, node, p.Epoch, p.Epochs, p.Step, p.TotalSteps, p.Loss, p.SamplesPerSecond));
        });
        Directory.CreateDirectory(outputDir);
        var result = LocalTrainingRun.Run(spec, data, device, Path.Combine(outputDir, "weights.safetensors"), progress, cancellation);
        return new TrainingCompleted(jobId, node, result.Accuracy, result.Loss, result.Steps, result.Epochs, result.SamplesPerSecond, result.WeightsPath);
    }

    /// <summary>The message a job's status shows: what failed and why, without a stack trace.</summary>
    private static string Describe(Exception ex) => ex switch
    {
        JobSpecException js => js.Field.Length == 0 ? js.Problem : $"field '{js.Field}': {js.Problem}",
        IdxFormatException or IOException or UnauthorizedAccessException or ArgumentException => ex.Message,
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };

    private sealed record ComputeFailed(Exception Exception);
}
