using System.Text.Json.Nodes;
using Orchestrator.Core.Jobs;

namespace Orchestrator.Core.Tests;

public class JobSpecParserTests
{

    private const string Minimal = """{ "name": "j1", "model": "mlp", "dataset": { "name": "fashion-mnist" } }""";

    private const string FullExample = """
    {
      "name": "fmnist-mlp",
      "model": "mlp",
      "dataset": { "name": "fashion-mnist", "path": null },
      "workers": 2,
      "devicesPerWorker": 1,
      "epochs": 2,
      "maxSteps": null,
      "batchSizePerDevice": 64,
      "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9, "weightDecay": 0.0 },
      "lrSchedule": { "warmupSteps": 0 },
      "seed": 42,
      "checkpoint": { "everySteps": 500, "keep": 3, "metric": "accuracy" },
      "allReduce": { "bucketBytes": 4194304, "transport": "akka" },
      "maxFailures": 3,
      "minWorkers": null
    }
    """;

    [Fact]
    public void Minimal_job_gets_every_default()
    {
        var job = JobSpecParser.Parse(Minimal);
        Assert.Equal(new DatasetSpec("fashion-mnist", null), job.Dataset);
        Assert.Equal(1, job.Workers);
        Assert.Equal(1, job.DevicesPerWorker);
        Assert.Equal(2, job.Epochs);
        Assert.Null(job.MaxSteps);
        Assert.Equal(64, job.BatchSizePerDevice);
        Assert.Equal(new OptimizerSpec("sgd", 0.05, 0.9, 0, 0.9, 0.999, 1e-8), job.Optimizer);
        Assert.Equal(0, job.LrSchedule.WarmupSteps);
        Assert.Equal(42, job.Seed);
        Assert.Equal(new CheckpointSpec(500, 3, null), job.Checkpoint);
        Assert.Equal(new AllReduceSpec(4 * 1024 * 1024, "akka"), job.AllReduce);
        Assert.Equal(("none", 65_512, 16, 4), (job.AllReduce.Compression, job.AllReduce.EffectiveChunkBytes, job.AllReduce.EffectiveWindow, job.AllReduce.EffectiveCreditBatch));
        Assert.Equal(3, job.MaxFailures);
        Assert.Null(job.MinWorkers);
    }

    [Fact]
    public void The_specification_example_parses_as_written()
    {
        var job = JobSpecParser.Parse(FullExample);
        Assert.Equal("fmnist-mlp", job.Name);
        Assert.Equal(2, job.Workers);
        Assert.Equal(2, job.WorldSize);
        Assert.Equal(128, job.GlobalBatchSize);
    }

    [Fact]
    public void Adam_takes_its_own_fields()
    {
        var job = JobSpecParser.Parse(With("""{ "optimizer": { "type": "adam", "lr": 0.001, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6 } }"""));
        Assert.Equal(new OptimizerSpec("adam", 0.001, 0.9, 0, 0.8, 0.99, 1e-6), job.Optimizer);
    }

    [Theory]
    // Malformed documents.
    [InlineData("{ \"name\": ", "", "not valid JSON")]
    [InlineData("[1, 2]", "", "must be a JSON object")]
    [InlineData("{ \"name\": \"a\", }", "", "not valid JSON")]
    // name
    [InlineData("{ \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "name", "is required")]
    [InlineData("{ \"name\": \"../x\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "name", "plain identifier")]
    [InlineData("{ \"name\": \"/\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "name", "plain identifier")]
    [InlineData("{ \"name\": \"a\\u0001b\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "name", "\\u0001")]
    [InlineData("{ \"name\": \"\", \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "name", "plain identifier")]
    [InlineData("{ \"name\": 7, \"model\": \"mlp\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "name", "must be a string")]
    // model and dataset
    [InlineData("{ \"name\": \"a\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "model", "is required")]
    [InlineData("{ \"name\": \"a\", \"model\": \"resnet\", \"dataset\": { \"name\": \"fashion-mnist\" } }", "model", "unknown model 'resnet'; built-in models: mlp, lenet")]
    [InlineData("{ \"name\": \"a\", \"model\": \"mlp\" }", "dataset", "is required")]
    [InlineData("{ \"name\": \"a\", \"model\": \"mlp\", \"dataset\": \"fashion-mnist\" }", "dataset", "must be a JSON object")]
    [InlineData("{ \"name\": \"a\", \"model\": \"mlp\", \"dataset\": { \"name\": \"cifar\" } }", "dataset.name", "must be one of")]
    [InlineData("{ \"name\": \"a\", \"model\": \"mlp\", \"dataset\": { \"path\": \"/x\" } }", "dataset.name", "is required")]
    [InlineData("{ \"name\": \"a\", \"model\": \"mlp\", \"dataset\": { \"name\": \"idx\" } }", "dataset.path", "is required when")]
    [InlineData("{ \"name\": \"a\", \"model\": \"mlp\", \"dataset\": { \"name\": \"idx\", \"path\": \"\" } }", "dataset.path", "non-empty")]
    [InlineData("{ \"name\": \"a\", \"model\": \"mlp\", \"dataset\": { \"name\": \"mnist\", \"split\": 1 } }", "dataset.split", "unknown field")]
    public void Invalid_documents_are_rejected_naming_the_field(string json, string field, string fragment)
    {
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.Parse(json));
        Assert.Equal(field, ex.Field);
        Assert.Contains(fragment, ex.Message);
    }

    [Theory]
    [InlineData("""{ "epoch": 3 }""", "epoch", "unknown field")]
    [InlineData("""{ "optimizer": { "lr": 0.1, "nesterov": true } }""", "optimizer.nesterov", "unknown field")]
    [InlineData("""{ "workers": "2" }""", "workers", "must be an integer, was the string \"2\"")]
    [InlineData("""{ "workers": 2.5 }""", "workers", "must be an integer")]
    [InlineData("""{ "workers": 0 }""", "workers", "between 1 and 1024, was 0")]
    [InlineData("""{ "workers": -1 }""", "workers", "was -1")]
    [InlineData("""{ "devicesPerWorker": 0 }""", "devicesPerWorker", "was 0")]
    [InlineData("""{ "epochs": 0 }""", "epochs", "was 0")]
    [InlineData("""{ "maxSteps": 0 }""", "maxSteps", "was 0")]
    [InlineData("""{ "batchSizePerDevice": -64 }""", "batchSizePerDevice", "was -64")]
    [InlineData("""{ "batchSizePerDevice": 0 }""", "batchSizePerDevice", "was 0")]
    [InlineData("""{ "optimizer": { "type": "rmsprop" } }""", "optimizer.type", "must be one of 'sgd', 'adam'")]
    [InlineData("""{ "optimizer": { "lr": 0 } }""", "optimizer.lr", "must be > 0")]
    [InlineData("""{ "optimizer": { "lr": -0.1 } }""", "optimizer.lr", "was -0.1")]
    [InlineData("""{ "optimizer": { "lr": "fast" } }""", "optimizer.lr", "finite number")]
    [InlineData("""{ "optimizer": { "momentum": 1 } }""", "optimizer.momentum", "< 1")]
    [InlineData("""{ "optimizer": { "momentum": -0.5 } }""", "optimizer.momentum", ">= 0")]
    [InlineData("""{ "optimizer": { "weightDecay": -0.01 } }""", "optimizer.weightDecay", ">= 0")]
    [InlineData("""{ "optimizer": { "beta1": 0.5 } }""", "optimizer.beta1", "types 'adam' and 'adamw' only")]
    [InlineData("""{ "optimizer": { "clipGradNorm": 0 } }""", "optimizer.clipGradNorm", "must be > 0")]
    [InlineData("""{ "lrSchedule": { "decay": "step" } }""", "lrSchedule.decay", "'none', 'cosine'")]
    [InlineData("""{ "lrSchedule": { "minLr": 0.001 } }""", "lrSchedule.minLr", "decay 'cosine' only")]
    [InlineData("""{ "lrSchedule": { "decay": "cosine", "minLr": 1 } }""", "lrSchedule.minLr", "<= 0.05")]
    [InlineData("""{ "optimizer": { "type": "adam", "momentum": 0.9 } }""", "optimizer.momentum", "'sgd' only")]
    [InlineData("""{ "optimizer": { "type": "adam", "eps": 0 } }""", "optimizer.eps", "> 0")]
    [InlineData("""{ "lrSchedule": { "warmupSteps": -1 } }""", "lrSchedule.warmupSteps", "was -1")]
    [InlineData("""{ "lrSchedule": { "cosine": true } }""", "lrSchedule.cosine", "unknown field")]
    [InlineData("""{ "seed": -1 }""", "seed", "must be >= 0")]
    [InlineData("""{ "seed": 1.5 }""", "seed", "must be an integer")]
    [InlineData("""{ "checkpoint": { "everySteps": 0 } }""", "checkpoint.everySteps", "was 0")]
    [InlineData("""{ "checkpoint": { "keep": 0 } }""", "checkpoint.keep", "was 0")]
    [InlineData("""{ "checkpoint": { "metric": "../f1" } }""", "checkpoint.metric", "must be a metric's name")]
    [InlineData("""{ "allReduce": { "bucketBytes": 1000 } }""", "allReduce.bucketBytes", "was 1000")]
    [InlineData("""{ "allReduce": { "bucketBytes": 4097 } }""", "allReduce.bucketBytes", "multiple of 4")]
    [InlineData("""{ "allReduce": { "transport": "udp" } }""", "allReduce.transport", "'akka', 'tcp'")]
    [InlineData("""{ "allReduce": { "compression": "int8" } }""", "allReduce.compression", "'none', 'bf16', 'fp16', was 'int8'")]
    [InlineData("""{ "allReduce": { "overlap": "yes" } }""", "allReduce.overlap", "must be true or false, was the string \"yes\"")]
    [InlineData("""{ "allReduce": { "inFlight": 0 } }""", "allReduce.inFlight", "between 1 and 8, was 0")]
    [InlineData("""{ "allReduce": { "inFlight": 9 } }""", "allReduce.inFlight", "between 1 and 8, was 9")]
    [InlineData("""{ "allReduce": { "transport": "akka", "chunkBytes": 1048576 } }""", "allReduce.chunkBytes", "between 4096 and 65512")]
    [InlineData("""{ "allReduce": { "transport": "tcp", "chunkBytes": 33554432 } }""", "allReduce.chunkBytes", "between 4096 and 16777216")]
    [InlineData("""{ "allReduce": { "chunkBytes": 4098 } }""", "allReduce.chunkBytes", "multiple of 4")]
    [InlineData("""{ "allReduce": { "window": 0 } }""", "allReduce.window", "was 0")]
    [InlineData("""{ "allReduce": { "transport": "tcp", "window": 65 } }""", "allReduce.window", "between 1 and 64")]
    [InlineData("""{ "allReduce": { "window": 8, "creditBatch": 9 } }""", "allReduce.creditBatch", "at most the window (8 chunks on the akka link), was 9")]
    [InlineData("""{ "allReduce": { "transport": "tcp", "creditBatch": 5 } }""", "allReduce.creditBatch", "at most the window (4 chunks on the tcp link)")]
    [InlineData("""{ "maxFailures": -1 }""", "maxFailures", "was -1")]
    [InlineData("""{ "maxFailures": 1000 }""", "maxFailures", "between 0 and 100, was 1000")]
    [InlineData("""{ "batchSizePerDevice": 65536 }""", "batchSizePerDevice", "between 1 and 8192, was 65536")]
    [InlineData("""{ "minWorkers": 0 }""", "minWorkers", "was 0")]
    [InlineData("""{ "workers": 2, "minWorkers": 3 }""", "minWorkers", "workers (2)")]
    public void Each_rule_names_its_field(string overrides, string field, string fragment)
    {
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.Parse(With(overrides)));
        Assert.Equal(field, ex.Field);
        Assert.Contains(fragment, ex.Message);
        Assert.StartsWith(field, ex.Message);
    }

    [Fact]
    public void A_link_s_settings_and_compression_are_read_and_unset_ones_are_the_link_s_defaults()
    {
        var tcp = JobSpecParser.Parse(With("""{ "allReduce": { "transport": "tcp", "compression": "bf16", "window": 8 } }""")).AllReduce;
        Assert.Equal(("tcp", "bf16", 1024 * 1024, 8, 2), (tcp.Transport, tcp.Compression, tcp.EffectiveChunkBytes, tcp.EffectiveWindow, tcp.EffectiveCreditBatch));
        var akka = JobSpecParser.Parse(With("""{ "allReduce": { "compression": "fp16", "chunkBytes": 32768, "creditBatch": 16 } }""")).AllReduce;
        Assert.Equal(("akka", "fp16", 32_768, 16, 16), (akka.Transport, akka.Compression, akka.EffectiveChunkBytes, akka.EffectiveWindow, akka.EffectiveCreditBatch));
        Assert.True(akka.Overlap);
        Assert.False(JobSpecParser.Parse(With("""{ "allReduce": { "overlap": false } }""")).AllReduce.Overlap);
        Assert.Equal(2, akka.InFlight);
        Assert.Equal(4, JobSpecParser.Parse(With("""{ "allReduce": { "inFlight": 4 } }""")).AllReduce.InFlight);
    }

    [Fact]
    public void A_workload_package_is_named_by_source_type_and_args_and_needs_no_dataset()
    {
        var job = JobSpecParser.Parse("""
            { "name": "lm", "workload": { "package": "sha256:%HASH%", "type": "Acme.Lm.CharLm", "args": { "layers": 2, "data": { "x": 1 } } },
              "optimizer": { "type": "adamw", "lr": 0.001, "clipGradNorm": 1.0 }, "lrSchedule": { "warmupSteps": 10, "decay": "cosine", "minLr": 0.0001 } }
            """.Replace("%HASH%", new string('a', 64)));
        Assert.False(job.IsBuiltIn);
        Assert.Null(job.Dataset);
        Assert.Equal("Acme.Lm.CharLm", job.Model);
        Assert.Equal(("sha256:" + new string('a', 64), "Acme.Lm.CharLm"), (job.Package!.Source, job.Package.Type));
        Assert.Equal(2, System.Text.Json.JsonDocument.Parse(job.Package.ArgsJson).RootElement.GetProperty("layers").GetInt32());
        Assert.Equal(("adamw", 0.01, 1.0), (job.Optimizer.Type, job.Optimizer.WeightDecay, job.Optimizer.ClipGradNorm));
        Assert.Equal(new LrScheduleSpec(10, "cosine", 0.0001), job.LrSchedule);
    }

    [Theory]
    [InlineData("""{ "name": "a", "model": "mlp", "workload": { "package": "/p", "type": "A.B" } }""", "model", "not both")]
    [InlineData("""{ "name": "a", "workload": { "type": "A.B" } }""", "workload.package", "is required")]
    [InlineData("""{ "name": "a", "workload": { "package": "/p" } }""", "workload.type", "is required")]
    [InlineData("""{ "name": "a", "workload": { "package": "/p", "type": "A B" } }""", "workload.type", "full name")]
    [InlineData("""{ "name": "a", "workload": { "package": "/p", "type": "A.B, Evil" } }""", "workload.type", "full name")]
    [InlineData("""{ "name": "a", "workload": { "package": "sha256:12", "type": "A.B" } }""", "workload.package", "64 lower-case hex")]
    [InlineData("""{ "name": "a", "workload": { "package": "/p", "type": "A.B", "args": [1] } }""", "workload.args", "must be a JSON object")]
    [InlineData("""{ "name": "a", "workload": { "package": "/p", "type": "A.B", "arg": {} } }""", "workload.arg", "unknown field")]
    [InlineData("""{ "name": "a", "model": "mlp", "dataset": { "name": "tensors" } }""", "dataset.path", "is required when dataset.name is 'tensors'")]
    public void Workload_rules_name_their_field(string json, string field, string fragment)
    {
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.Parse(json));
        Assert.Equal(field, ex.Field);
        Assert.Contains(fragment, ex.Message);
    }

    [Fact]
    public void A_relative_package_path_is_taken_from_the_job_files_folder()
    {
        var folder = Directory.CreateTempSubdirectory("jobfile-").FullName;
        var file = Path.Combine(folder, "job.json");
        File.WriteAllText(file, """{ "name": "a", "workload": { "package": "pkg/out", "type": "A.B" } }""");
        Assert.Equal(Path.Combine(folder, "pkg", "out"), JobSpecParser.ParseFile(file).Package!.Source);
        Directory.Delete(folder, true);
    }

    [Fact]
    public void A_duplicate_field_is_rejected_not_silently_overwritten()
    {
        var ex = Assert.Throws<JobSpecException>(() =>
            JobSpecParser.Parse("""{ "name": "a", "model": "mlp", "dataset": { "name": "mnist" }, "epochs": 1, "epochs": 5 }"""));
        Assert.Equal("epochs", ex.Field);
        Assert.Contains("more than once", ex.Message);
    }

    [Fact]
    public void Null_optional_fields_take_their_defaults()
    {
        var job = JobSpecParser.Parse(With("""{ "maxSteps": null, "minWorkers": null, "optimizer": null }"""));
        Assert.Null(job.MaxSteps);
        Assert.Equal("sgd", job.Optimizer.Type);
    }

    [Fact]
    public void A_missing_job_file_is_reported_with_its_path()
    {
        var ex = Assert.Throws<JobSpecException>(() => JobSpecParser.ParseFile("/nonexistent/job.json"));
        Assert.Contains("/nonexistent/job.json", ex.Message);
    }

    /// <summary>The minimal job with some fields replaced or added.</summary>
    private static string With(string overrides)
    {
        var job = JsonNode.Parse(Minimal)!.AsObject();
        foreach (var (key, value) in JsonNode.Parse(overrides)!.AsObject())
            job[key] = value?.DeepClone();
        return job.ToJsonString();
    }
}
