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
    public static readonly string[] DatasetNames = ["fashion-mnist", "mnist", "idx", "tensors"];
    /// <summary>The built-in workloads, named by <c>"model"</c>: image classifiers on a <c>"dataset"</c>.</summary>
    public static readonly string[] BuiltInModels = ["mlp", "lenet"];
    public static readonly string[] Optimizers = ["sgd", "adam", "adamw"];
    public static readonly string[] Decays = ["none", "cosine"];
    public static readonly string[] Transports = RingLinkKind.All.Select(k => k.Name).ToArray();
    public static readonly string[] Compressions = ["none", "bf16", "fp16"];
    public const int MaxBatchSizePerDevice = 8192;
    public const int MaxFailures = 100;

    // A plain identifier: it also names folders, so never a path, a dot name or a control character.
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    private static partial Regex NamePattern();

    /// <summary>Parses a job file; a relative package path in it is taken from the file's folder.</summary>
    public static JobSpec ParseFile(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new JobSpecException("", $"cannot read job file {path}: {ex.Message}");
        }
        var spec = Parse(text);
        if (spec.Package is not { } package) return spec;
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        var source = package.Source.StartsWith(PackageHashPrefix, StringComparison.Ordinal) ? package.Source : System.IO.Path.GetFullPath(package.Source, folder);
        return spec with { Package = package with { Source = source, BaseDirectory = System.IO.Path.GetFullPath(package.BaseDirectory ?? ".", folder) } };
    }

    /// <summary>A package source that names an uploaded package by its SHA-256 (lower-case hex).</summary>
    public const string PackageHashPrefix = "sha256:";

    public static JobSpec Parse(string json)
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
        using (document) return Read(new JsonFields(document.RootElement, ""));
    }

    private static JobSpec Read(JsonFields job)
    {
        var name = job.RequiredString("name");
        if (!NamePattern().IsMatch(name))
            throw new JobSpecException("name", $"must be a plain identifier (letters, digits, '_', '.', '-', starting with a letter or digit, at most 64 characters), was \"{Printable(name)}\"");

        // What is trained: a built-in by name on a dataset, or a package's workload (which reads its own data).
        string model;
        WorkloadPackageSpec? package = null;
        DatasetSpec? dataset = null;
        if (job.Has("workload"))
        {
            if (job.Has("model")) throw new JobSpecException("model", "give either 'model' (a built-in) or 'workload' (a package), not both");
            package = ReadWorkload(job.Object("workload"));
            model = package.Type;
            if (job.Has("dataset")) dataset = ReadDataset(job.Object("dataset"));
        }
        else
        {
            if (!job.Has("model")) throw new JobSpecException("model", "is required (a built-in: " + string.Join(", ", BuiltInModels) + "), or give 'workload'");
            model = job.RequiredString("model");
            if (!BuiltInModels.Contains(model))
                throw new JobSpecException("model", $"unknown model '{Printable(model)}'; built-in models: {string.Join(", ", BuiltInModels)} (a model of your own comes as a 'workload' package)");
            if (!job.Has("dataset")) throw new JobSpecException("dataset", "is required");
            dataset = ReadDataset(job.Object("dataset"));
        }

        var workers = job.Int("workers", 1, 1, 1024);
        var devicesPerWorker = job.Int("devicesPerWorker", 1, 1, 64);
        var epochs = job.Int("epochs", 2, 1, 100_000);
        var maxSteps = job.OptionalInteger("maxSteps", 1, 1_000_000_000_000);
        // Limits that fit a device's memory and a job's patience: a batch beyond 8,192 samples per device, or more than
        // 100 recoveries, is a mistake more often than a plan, and would run workers out of memory again and again.
        var batch = job.Int("batchSizePerDevice", 64, 1, MaxBatchSizePerDevice);
        var optimizer = ReadOptimizer(job.Object("optimizer"));
        var schedule = job.Object("lrSchedule");
        var lrSchedule = new LrScheduleSpec(schedule.Int("warmupSteps", 0, 0, 100_000_000), schedule.Choice("decay", "none", Decays),
            schedule.Double("minLr", 0, 0, optimizer.Lr));
        if (lrSchedule.Decay == "none" && schedule.Has("minLr"))
            throw new JobSpecException(schedule.Child("minLr"), "applies to decay 'cosine' only");
        schedule.RejectUnknown();
        var seed = job.OptionalInteger("seed", 0, long.MaxValue) ?? 42;
        var checkpoint = ReadCheckpoint(job.Object("checkpoint"));
        var allReduce = ReadAllReduce(job.Object("allReduce"));
        var maxFailures = job.Int("maxFailures", 3, 0, MaxFailures);
        var minWorkers = (int?)job.OptionalInteger("minWorkers", 1, 1024);
        if (minWorkers > workers)
            throw new JobSpecException("minWorkers", $"must be between 1 and workers ({workers}), was {minWorkers}");
        job.RejectUnknown();

        return new JobSpec(name, model, dataset, workers, devicesPerWorker, epochs, maxSteps, batch, optimizer,
            lrSchedule, seed, checkpoint, allReduce, maxFailures, minWorkers, package);
    }

    // A type name as C# writes it: namespaces and nested types, generic arity; never a path or an assembly-qualified name.
    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*([.+][A-Za-z_][A-Za-z0-9_]*)*(`[0-9]+)?$")]
    private static partial Regex TypeNamePattern();

    [GeneratedRegex("^sha256:[0-9a-f]{64}$")]
    private static partial Regex PackageHashPattern();

    private static WorkloadPackageSpec ReadWorkload(JsonFields w)
    {
        var source = w.RequiredString("package");
        if (source.Length == 0 || source.Any(char.IsControl))
            throw new JobSpecException(w.Child("package"), "must be a folder, a .zip file or sha256:<64 hex digits>, without control characters");
        if (source.StartsWith(PackageHashPrefix, StringComparison.Ordinal) && !PackageHashPattern().IsMatch(source))
            throw new JobSpecException(w.Child("package"), $"must be sha256: followed by 64 lower-case hex digits, was \"{Printable(source)}\"");
        var type = w.RequiredString("type");
        if (type.Length > 512 || !TypeNamePattern().IsMatch(type))
            throw new JobSpecException(w.Child("type"), $"must be a type's full name (Namespace.Type), was \"{Printable(type)}\"");
        var args = w.RawObject("args");
        var baseDir = w.OptionalString("baseDir");
        if (baseDir is not null && (baseDir.Length == 0 || baseDir.Any(char.IsControl)))
            throw new JobSpecException(w.Child("baseDir"), "must be a folder's path without control characters");
        w.RejectUnknown();
        return new WorkloadPackageSpec(source, type, args, baseDir);
    }

    private static DatasetSpec ReadDataset(JsonFields d)
    {
        var name = d.Choice("name", null, DatasetNames);
        var path = d.OptionalString("path");
        if (path is not null && (path.Length == 0 || path.Any(char.IsControl)))
            throw new JobSpecException(d.Child("path"), "must be a non-empty path without control characters");
        if (name is "idx" or "tensors" && path is null)
            throw new JobSpecException(d.Child("path"), $"is required when dataset.name is '{name}'");
        d.RejectUnknown();
        return new DatasetSpec(name, path);
    }

    private static OptimizerSpec ReadOptimizer(JsonFields o)
    {
        var type = o.Choice("type", "sgd", Optimizers);
        var lr = o.Double("lr", type == "sgd" ? 0.05 : 0.001, 0, 100, minExclusive: true);
        var weightDecay = o.Double("weightDecay", type == "adamw" ? 0.01 : 0, 0, 1);
        double? clip = o.Has("clipGradNorm") ? o.Double("clipGradNorm", 1, 0, 1e6, minExclusive: true) : null;
        double momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
        if (type == "sgd")
        {
            momentum = o.Double("momentum", 0.9, 0, 1, maxExclusive: true);
            foreach (var adamOnly in new[] { "beta1", "beta2", "eps" })
                if (o.Has(adamOnly)) throw new JobSpecException(o.Child(adamOnly), "applies to optimizer types 'adam' and 'adamw' only");
        }
        else
        {
            if (o.Has("momentum")) throw new JobSpecException(o.Child("momentum"), $"applies to optimizer type 'sgd' only ({type} uses beta1 and beta2)");
            beta1 = o.Double("beta1", 0.9, 0, 1, maxExclusive: true);
            beta2 = o.Double("beta2", 0.999, 0, 1, maxExclusive: true);
            eps = o.Double("eps", 1e-8, 0, 1, minExclusive: true);
        }
        o.RejectUnknown();
        return new OptimizerSpec(type, lr, momentum, weightDecay, beta1, beta2, eps, clip);
    }

    private static CheckpointSpec ReadCheckpoint(JsonFields c)
    {
        var metric = c.OptionalString("metric");
        if (metric is not null && !MetricPattern().IsMatch(metric))
            throw new JobSpecException(c.Child("metric"), $"must be a metric's name (letters, digits, '_', '.', '-'), was \"{Printable(metric)}\"");
        var spec = new CheckpointSpec(c.Int("everySteps", 500, 1, int.MaxValue), c.Int("keep", 3, 1, 10_000), metric);
        c.RejectUnknown();
        return spec;
    }

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
    private static partial Regex MetricPattern();

    private static AllReduceSpec ReadAllReduce(JsonFields a)
    {
        var bucket = a.Int("bucketBytes", 4 * 1024 * 1024, 4096, 1 << 30);
        if (bucket % 4 != 0) throw new JobSpecException(a.Child("bucketBytes"), $"must be a multiple of 4 (float32 elements), was {bucket}");
        var link = RingLinkKind.Named(a.Choice("transport", "akka", Transports));
        var compression = a.Choice("compression", "none", Compressions);
        var chunk = a.Int("chunkBytes", 0, RingLinkKind.MinChunkBytes, link.MaxChunkBytes);
        if (chunk % 4 != 0) throw new JobSpecException(a.Child("chunkBytes"), $"must be a multiple of 4, was {chunk}");
        var window = a.Int("window", 0, 1, link.MaxWindow);
        var credit = a.Int("creditBatch", 0, 1, link.MaxWindow);
        int effectiveWindow = window > 0 ? window : link.DefaultWindow;
        if (credit > effectiveWindow)
            throw new JobSpecException(a.Child("creditBatch"), $"must be at most the window ({effectiveWindow} chunks on the {link.Name} link), was {credit}");
        var spec = new AllReduceSpec(bucket, link.Name, compression, chunk, window, credit, a.Bool("overlap", true),
            a.Int("inFlight", AllReduceSpec.DefaultInFlight, 1, AllReduceSpec.MaxInFlight));
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
