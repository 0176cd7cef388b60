using Orchestrator.Core.Protocol;
using TorchSharp.Modules;
using static TorchSharp.torch.utils.tensorboard;

namespace Orchestrator.Cluster.Metrics;

/// <summary>
/// One job's TensorBoard event files, written with TorchSharp's own <see cref="SummaryWriter"/> into the job's folder
/// (<c>&lt;data-dir&gt;/tensorboard/&lt;job-id&gt;</c>), so that <c>tensorboard --logdir &lt;data-dir&gt;/tensorboard</c> shows
/// every job as a run. The only writer of these files is <see cref="MetricsRecorder"/>, on the coordinator that holds the
/// job manager. Scalars, by step: <c>train/loss</c>, <c>train/learning_rate</c>, <c>train/samples_per_second</c> (the job's),
/// <c>train/communication_share</c> (rank 0's), <c>workers/rank&lt;r&gt;/samples_per_second</c> and
/// <c>…/communication_share</c>, and <c>heldout/&lt;metric&gt;</c> at each evaluated checkpoint. A new writer (a coordinator
/// restart) starts a new file in the same folder, which TensorBoard reads together with the old ones.
/// </summary>
public sealed class TensorBoardRun(string folder)
{
    private readonly SummaryWriter _writer = SummaryWriter(folder);

    public string Folder { get; } = folder;

    public void Write(JobProtocol.MetricsPoint point)
    {
        var step = (int)Math.Min(point.Step, int.MaxValue);   // TorchSharp's writer takes an int step
        var at = point.AtMs / 1000;                             // wall time in whole Unix seconds, as the writer takes it
        Scalar("train/loss", point.Loss, step, at);
        Scalar("train/learning_rate", point.LearningRate, step, at);
        Scalar("train/samples_per_second", point.SamplesPerSecond, step, at);
        Scalar("train/communication_share", point.CommunicationShare, step, at);
        foreach (var worker in point.Workers)
        {
            Scalar($"workers/rank{worker.Rank}/samples_per_second", worker.SamplesPerSecond, step, at);
            Scalar($"workers/rank{worker.Rank}/communication_share", worker.CommunicationShare, step, at);
        }
    }

    public void Write(JobProtocol.EvaluationPoint evaluation, long atMs)
    {
        foreach (var (name, value) in evaluation.Metrics)
            Scalar($"heldout/{name}", value, (int)Math.Min(evaluation.Step, int.MaxValue), atMs / 1000);
    }

    private void Scalar(string tag, double value, int step, long at)
    {
        if (double.IsFinite(value)) _writer.add_scalar(tag, (float)value, step, at);
    }
}
