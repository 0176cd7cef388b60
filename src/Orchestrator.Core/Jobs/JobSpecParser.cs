using System.Text.Json;
using System.Text.RegularExpressions;

namespace Orchestrator.Core.Jobs;

/// <summary>
/// Parses and validates a job file (PRODUCT.md section 3). Every rule names the field it checks;
/// nothing partially valid comes out. Dataset files are checked at the edge that can see them
/// (the trainer's data locator), not here.
/// </summary>
public static partial class JobSpecParser
{
    public static readonly string[] DatasetNames = ["fashion-mnist", "mnist", "idx"];
    public static readonly string[] Optimizers = ["sgd", "adam"];
    public static readonly string[] Transports = ["akka", "tcp"];
    public static readonly string[] Metrics = ["accuracy", "loss"];

    // A plain identifier: it also names folders, so never a path, a dot name or a control character.
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    private static partial Regex NamePattern();

    public static JobSpec ParseFile(string path, IReadOnlyCollection<string> knownModels)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new JobSpecException("", $"cannot read job file {path}: {ex.Message}");
        }
        return Parse(text, knownModels);
    }

    public static JobSpec Parse(string json, IReadOnlyCollection<string> knownModels)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException ex)
        {
            throw new JobSpecException("", $"not valid JSON (line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}): {FirstSentence(ex.Message)}");
        }
        using (document) return Read(new JsonFields(document.RootElement, ""), knownModels);
    }

    private static JobSpec Read(JsonFields job, IReadOnlyCollection<string> knownModels)
    {
        var name = job.RequiredString("name");
        if (!NamePattern().IsMatch(name))
            throw new JobSpecException("name", $"must be a plain identifier (letters, digits, '_', '.', '-', starting with a letter or digit, at most 64 characters), was \"{Printable(name)}\"");

        var model = job.RequiredString("model");
        if (!knownModels.Contains(model))
            throw new JobSpecException("model", $"unknown model '{Printable(model)}'; known models: {string.Join(", ", knownModels)}");

        if (!job.Has("dataset")) throw new JobSpecException("dataset", "is required");
        var dataset = ReadDataset(job.Object("dataset"));

        var workers = job.Int("workers", 1, 1, 1024);
        var devicesPerWorker = job.Int("devicesPerWorker", 1, 1, 64);
        var epochs = job.Int("epochs", 2, 1, 100_000);
        var maxSteps = job.OptionalInteger("maxSteps", 1, 1_000_000_000_000);
        var batch = job.Int("batchSizePerDevice", 64, 1, 65_536);
        var optimizer = ReadOptimizer(job.Object("optimizer"));
        var schedule = job.Object("lrSchedule");
        var lrSchedule = new LrScheduleSpec(schedule.Int("warmupSteps", 0, 0, 100_000_000));
        schedule.RejectUnknown();
        var seed = job.OptionalInteger("seed", 0, long.MaxValue) ?? 42;
        var checkpoint = ReadCheckpoint(job.Object("checkpoint"));
        var allReduce = ReadAllReduce(job.Object("allReduce"));
        var maxFailures = job.Int("maxFailures", 3, 0, 1000);
        var minWorkers = (int?)job.OptionalInteger("minWorkers", 1, 1024);
        if (minWorkers > workers)
            throw new JobSpecException("minWorkers", $"must be between 1 and workers ({workers}), was {minWorkers}");
        job.RejectUnknown();

        return new JobSpec(name, model, dataset, workers, devicesPerWorker, epochs, maxSteps, batch, optimizer,
            lrSchedule, seed, checkpoint, allReduce, maxFailures, minWorkers);
    }

    private static DatasetSpec ReadDataset(JsonFields d)
    {
        var name = d.Choice("name", null, DatasetNames);
        var path = d.OptionalString("path");
        if (path is not null && (path.Length == 0 || path.Any(char.IsControl)))
            throw new JobSpecException(d.Child("path"), "must be a non-empty path without control characters");
        if (name == "idx" && path is null)
            throw new JobSpecException(d.Child("path"), "is required when dataset.name is 'idx'");
        d.RejectUnknown();
        return new DatasetSpec(name, path);
    }

    private static OptimizerSpec ReadOptimizer(JsonFields o)
    {
        var type = o.Choice("type", "sgd", Optimizers);
        var lr = o.Double("lr", type == "sgd" ? 0.05 : 0.001, 0, 100, minExclusive: true);
        var weightDecay = o.Double("weightDecay", 0, 0, 1);
        double momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
        if (type == "sgd")
        {
            momentum = o.Double("momentum", 0.9, 0, 1, maxExclusive: true);
            foreach (var adamOnly in new[] { "beta1", "beta2", "eps" })
                if (o.Has(adamOnly)) throw new JobSpecException(o.Child(adamOnly), "applies to optimizer type 'adam' only");
        }
        else
        {
            if (o.Has("momentum")) throw new JobSpecException(o.Child("momentum"), "applies to optimizer type 'sgd' only (adam uses beta1 and beta2)");
            beta1 = o.Double("beta1", 0.9, 0, 1, maxExclusive: true);
            beta2 = o.Double("beta2", 0.999, 0, 1, maxExclusive: true);
            eps = o.Double("eps", 1e-8, 0, 1, minExclusive: true);
        }
        o.RejectUnknown();
        return new OptimizerSpec(type, lr, momentum, weightDecay, beta1, beta2, eps);
    }

    private static CheckpointSpec ReadCheckpoint(JsonFields c)
    {
        var spec = new CheckpointSpec(c.Int("everySteps", 500, 1, int.MaxValue), c.Int("keep", 3, 1, 10_000),
            c.Choice("metric", "accuracy", Metrics));
        c.RejectUnknown();
        return spec;
    }

    private static AllReduceSpec ReadAllReduce(JsonFields a)
    {
        var bucket = a.Int("bucketBytes", 4 * 1024 * 1024, 4096, 1 << 30);
        if (bucket % 4 != 0) throw new JobSpecException(a.Child("bucketBytes"), $"must be a multiple of 4 (float32 elements), was {bucket}");
        var spec = new AllReduceSpec(bucket, a.Choice("transport", "akka", Transports));
        a.RejectUnknown();
        return spec;
    }

    private static string Printable(string s) =>
        string.Concat(s.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}
