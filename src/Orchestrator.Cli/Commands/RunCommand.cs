using System.CommandLine;
using System.Globalization;
using Orchestrator.Core.Jobs;
using Orchestrator.Training.Checkpoints;
using Orchestrator.Training.Data;
using Orchestrator.Training.Devices;
using Orchestrator.Training.Engine;
using Orchestrator.Sdk;
using Orchestrator.Training.Workloads;
using Spectre.Console;

namespace Orchestrator.Cli.Commands;

/// <summary><c>orchestrator run job.json</c>: trains the job in this process, the single-replica reference.</summary>
public static class RunCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "the job file (JSON)" };
        var json = new Option<bool>("--json") { Description = "print one JSON document with the result (progress goes to stderr)" };
        var output = new Option<string?>("--out") { Description = "where to write the final weights (safetensors); default <name>.safetensors" };
        var device = new Option<string>("--device")
        {
            Description = "auto, cpu, cuda or cuda:N (default: $ORCHESTRATOR_DEVICE, else auto)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ORCHESTRATOR_DEVICE") ?? "auto",
        };
        var threads = new Option<int>("--threads")
        {
            Description = "CPU threads for libtorch (default: all cores)",
            DefaultValueFactory = _ => Environment.ProcessorCount,
        };
        var checkpointDir = new Option<string?>("--checkpoint-dir")
        {
            Description = "write a checkpoint every checkpoint.everySteps steps and at each epoch's end into this folder",
        };
        var resume = new Option<string?>("--resume")
        {
            Description = "continue from this checkpoint (its folder, or a file in it); it is verified before use",
        };
        var plot = new Option<string?>("--plot") { Description = "also draw the run's training loss, throughput and final held-out metrics against step into this PNG" };
        var command = new Command("run", "train a job in this one process, without a cluster (the single-replica reference)")
        {
            job, json, output, device, threads, checkpointDir, resume, plot,
        };
        command.SetAction(result => CliErrors.Run(() => Execute(
            result.GetValue(job)!, result.GetValue(json), result.GetValue(output), result.GetValue(device)!, result.GetValue(threads),
            result.GetValue(checkpointDir), result.GetValue(resume), result.GetValue(plot))));
        return command;
    }

    private static int Execute(string jobPath, bool json, string? outPath, string deviceName, int threads, string? checkpointDir, string? resumePath,
        string? plotPath)
    {
        if (!File.Exists(jobPath)) throw new UsageException($"job file not found: {jobPath}");
        var plot = plotPath is null ? null : Path.GetFullPath(plotPath);
        if (plot is not null && Path.GetDirectoryName(plot) is { } plotFolder && !Directory.Exists(plotFolder))
            throw new UsageException($"--plot {plotPath}: the folder {plotFolder} does not exist");
        if (threads < 1) throw new UsageException($"--threads must be at least 1, was {threads}");
        var spec = JobSpecParser.ParseFile(jobPath);
        TorchSharp.torch.Device device;
        try { device = DeviceSelector.Resolve(deviceName); }
        catch (ArgumentException ex) { throw new UsageException($"--device: {ex.Message}"); }
        if (checkpointDir is not null && File.Exists(checkpointDir))
            throw new UsageException($"--checkpoint-dir: {checkpointDir} is a file, not a folder");
        TrainingSnapshot? resume = null;
        if (resumePath is not null)
        {
            var folder = Directory.Exists(resumePath) ? resumePath : File.Exists(resumePath) ? Path.GetDirectoryName(Path.GetFullPath(resumePath))! : null;
            if (folder is null) throw new UsageException($"--resume: no checkpoint at {resumePath}");
            try { resume = CheckpointFolder.Load(folder); }
            catch (CheckpointInvalidException ex) { throw new UsageException($"--resume: {folder} is not a valid checkpoint: {ex.Message}"); }
            if (resume.Model != spec.Model) throw new UsageException($"--resume: the checkpoint holds a '{resume.Model}' model, the job trains '{spec.Model}'");
        }
        TorchSharp.torch.set_num_threads(threads);
        using var workload = WorkloadLoading.Load(spec);
        var weights = outPath ?? $"{spec.Name}.safetensors";

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };

        var header = $"{spec.Name}: {workload.Description}, " +
                     $"batch {spec.GlobalBatchSize}, {spec.Epochs} epoch(s), device {device}";
        // Every report, for --plot: the same figures `orchestrator plot` draws for a cluster job (one worker, no communication).
        var points = new List<ChartPoint>();
        void Record(TrainingProgress p) => points.Add(new ChartPoint(p.Step, p.Loss, [(0, p.SamplesPerSecond, 0.0)]));
        LocalRunResult result;
        if (json)
        {
            Console.Error.WriteLine(header);
            result = LocalTrainingRun.Run(spec, workload.Workload, device, weights, PlainProgress(Console.Error, Record), cancel.Token, checkpointDir, resume);
        }
        else if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            AnsiConsole.MarkupLine(Markup.Escape(header));
            result = WithProgressBar(spec, workload.Workload, device, weights, cancel.Token, checkpointDir, resume, Record);
        }
        else
        {
            Console.WriteLine(header);
            result = LocalTrainingRun.Run(spec, workload.Workload, device, weights, PlainProgress(Console.Out, Record), cancel.Token, checkpointDir, resume);
        }

        if (plot is not null)
            MetricsChart.Save($"{spec.Name} (orchestrator run)", points, [(result.Steps, new Dictionary<string, double>(result.Metrics.Values))], plot);

        if (json)
        {
            Console.WriteLine(JsonOutput.Serialize(new RunResultJson(result.Metrics.Accuracy, result.Metrics.Loss, result.Metrics.Values, result.Steps,
                result.Epochs, result.SamplesPerSecond, result.WeightsPath, result.Elapsed.TotalSeconds)));
        }
        else
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"held-out {result.Metrics.Describe()} after {result.Steps} steps ({result.Epochs} epoch(s)), {result.SamplesPerSecond:F0} samples/s"));
            Console.WriteLine($"weights: {result.WeightsPath}");
            if (plot is not null) Console.WriteLine($"plot: {plot}");
        }
        return ExitCodes.Success;
    }

    private static LocalRunResult WithProgressBar(JobSpec spec, IWorkload workload, TorchSharp.torch.Device device, string weights, CancellationToken token,
        string? checkpointDir, TrainingSnapshot? resume, Action<TrainingProgress> record)
    {
        LocalRunResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask("training");
                var progress = new SynchronousProgress<TrainingProgress>(p =>
                {
                    record(p);
                    task.MaxValue = p.TotalSteps;
                    task.Value = p.Step;
                    task.Description = Describe(p);
                });
                result = LocalTrainingRun.Run(spec, workload, device, weights, progress, token, checkpointDir, resume);
            });
        return result!;
    }

    /// <summary>One line every couple of seconds: logs and pipes get a readable record, not a bar.</summary>
    private static IProgress<TrainingProgress> PlainProgress(TextWriter writer, Action<TrainingProgress> record)
    {
        var last = DateTime.MinValue;
        return new SynchronousProgress<TrainingProgress>(p =>
        {
            record(p);
            if (p.Step != p.TotalSteps && DateTime.UtcNow - last < TimeSpan.FromSeconds(2)) return;
            last = DateTime.UtcNow;
            writer.WriteLine(Describe(p));
        });
    }

    private static string Describe(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} {p.SamplesPerSecond:F0} samples/s");

    private sealed record RunResultJson(double? Accuracy, double? Loss, IReadOnlyDictionary<string, double> Metrics, long Steps, int Epochs, double SamplesPerSecond, string Weights, double ElapsedSeconds);
}
