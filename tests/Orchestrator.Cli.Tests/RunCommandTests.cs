using System.Text.Json;
using Orchestrator.Training.Safetensors;

namespace Orchestrator.Cli.Tests;

public sealed class RunCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cli-run-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string JobFile(string json)
    {
        var path = Path.Combine(_folder, $"job-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    private static void AssertNoStackTrace(CliResult r) =>
        Assert.DoesNotContain("   at ", r.Stderr + r.Stdout);

    [Theory]
    [InlineData("""{ "name": "a", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "epochs": 0 }""", "field 'epochs'")]
    [InlineData("""{ "name": "a", "model": "vgg", "dataset": { "name": "fashion-mnist" } }""", "field 'model': unknown model 'vgg'")]
    [InlineData("""{ "name": "a", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "optimizer": { "lr": -1 } }""", "field 'optimizer.lr'")]
    [InlineData("""{ "name": "a", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "batchSize": 64 }""", "field 'batchSize': unknown field")]
    [InlineData("""{ "name": "a", "model": "mlp", """, "not valid JSON")]
    [InlineData("""{ "name": "a", "model": "mlp", "dataset": { "name": "idx", "path": "/no/such/folder" } }""", "field 'dataset.path'")]
    public void A_bad_job_exits_2_naming_the_field_without_a_stack_trace(string json, string expected)
    {
        var result = Cli.Run("run", JobFile(json));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.Stderr);
        AssertNoStackTrace(result);
    }

    [Theory]
    [InlineData("""{ "layers": 0 }""", "invalid job: field 'workload.args.layers': must be >= 1, was 0")]
    [InlineData("""{ "layerz": 2 }""", "invalid job: field 'workload.args.layerz': unknown argument")]
    public void A_workload_argument_the_workload_refuses_exits_2_naming_the_field(string args, string expected)
    {
        var job = JobFile($$"""
            { "name": "lm", "workload": { "package": "{{TestSupport.Packages.Example("CharTransformer")}}",
              "type": "Examples.CharTransformer.CharLanguageModel", "args": {{args}} } }
            """);
        var result = Cli.Run("run", job);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.Stderr);
        AssertNoStackTrace(result);
    }

    [Fact]
    public void A_package_that_cannot_be_loaded_exits_2_with_the_reason()
    {
        var job = JobFile($$"""{ "name": "x", "workload": { "package": "{{TestSupport.Packages.Fixture("BadWorkloads")}}", "type": "Fixtures.NotAWorkload" } }""");
        var result = Cli.Run("run", job);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("cannot load the workload: Fixtures.NotAWorkload does not implement Orchestrator.Sdk.IWorkload", result.Stderr);
        AssertNoStackTrace(result);
    }

    [Fact]
    public void The_tensors_dataset_trains_the_built_in_mlp_on_data_made_in_numpy()
    {
        var data = Path.Combine(TestSupport.Packages.Root, "examples", "TensorsClassifier", "blobs.safetensors");
        var job = JobFile($$"""{ "name": "blobs", "model": "mlp", "dataset": { "name": "tensors", "path": "{{data}}" }, "epochs": 3, "batchSizePerDevice": 32 }""");
        var plot = Path.Combine(_folder, "blobs.png");
        var result = Cli.Run("run", job, "--json", "--out", Path.Combine(_folder, "blobs.safetensors"), "--plot", plot);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var accuracy = JsonDocument.Parse(result.Stdout).RootElement.GetProperty("accuracy").GetDouble();
        Assert.True(accuracy > 0.9, $"held-out accuracy {accuracy} on three well-separated blobs");
        // --plot: the run's curves as a PNG (1000 x 1280, as `orchestrator plot` draws them).
        var png = File.ReadAllBytes(plot);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.Equal(1000, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
    }

    [Fact]
    public void A_plot_into_a_missing_folder_exits_2_before_training()
    {
        var job = JobFile("""{ "name": "a", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 100000 }""");
        var result = Cli.Run("run", job, "--plot", Path.Combine(_folder, "no-such-folder", "run.png"));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--plot", result.Stderr);
        Assert.Contains("does not exist", result.Stderr);
        AssertNoStackTrace(result);
    }

    [Fact]
    public void A_missing_or_damaged_checkpoint_to_resume_from_and_a_file_as_checkpoint_folder_exit_2_naming_the_option()
    {
        var job = JobFile("""{ "name": "a", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 1 }""");
        var missing = Cli.Run("run", job, "--resume", Path.Combine(_folder, "no-such-checkpoint"));
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("--resume: no checkpoint at", missing.Stderr);

        var notCommitted = Path.Combine(_folder, "step-000000005");
        Directory.CreateDirectory(notCommitted);
        File.WriteAllText(Path.Combine(notCommitted, "model.safetensors"), "not safetensors");
        var damaged = Cli.Run("run", job, "--resume", notCommitted);
        Assert.Equal(2, damaged.ExitCode);
        Assert.Contains("is not a valid checkpoint: manifest missing", damaged.Stderr);

        var file = Path.Combine(_folder, "a-file");
        File.WriteAllText(file, "x");
        var fileAsFolder = Cli.Run("run", job, "--checkpoint-dir", file);
        Assert.Equal(2, fileAsFolder.ExitCode);
        Assert.Contains("--checkpoint-dir", fileAsFolder.Stderr);
        foreach (var r in new[] { missing, damaged, fileAsFolder }) AssertNoStackTrace(r);
    }

    [Fact]
    public void A_missing_job_file_or_bad_option_exits_2()
    {
        var missing = Cli.Run("run", Path.Combine(_folder, "nope.json"));
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("job file not found", missing.Stderr);
        var unknownCommand = Cli.Run("frobnicate");
        Assert.Equal(2, unknownCommand.ExitCode);
        var badDevice = Cli.Run("run", JobFile("""{ "name": "a", "model": "mlp", "dataset": { "name": "fashion-mnist" } }"""), "--device", "tpu");
        Assert.Equal(2, badDevice.ExitCode);
        Assert.Contains("--device", badDevice.Stderr);
        AssertNoStackTrace(badDevice);
    }

    [Fact]
    public void A_truncated_dataset_file_is_named_and_exits_2()
    {
        var data = Path.Combine(_folder, "data");
        Directory.CreateDirectory(data);
        foreach (var f in Directory.GetFiles("/usr/share/datasets/fashion-mnist")) File.Copy(f, Path.Combine(data, Path.GetFileName(f)));
        var labels = Path.Combine(data, "t10k-labels-idx1-ubyte.gz");
        var bytes = File.ReadAllBytes(labels);
        File.WriteAllBytes(labels, bytes[..(bytes.Length - 200)]);
        var result = Cli.Run("run", JobFile($$"""{ "name": "a", "model": "mlp", "dataset": { "name": "idx", "path": "{{data}}" }, "maxSteps": 1 }"""));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(labels, result.Stderr);
        AssertNoStackTrace(result);
    }

    [Fact]
    public void Run_json_prints_the_contract_fields_and_writes_readable_weights()
    {
        var weights = Path.Combine(_folder, "out", "w.safetensors");
        var result = Cli.Run("run", JobFile("""
            { "name": "short", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 40, "batchSizePerDevice": 64 }
            """), "--json", "--out", weights, "--threads", "2");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal(40, root.GetProperty("steps").GetInt32());
        Assert.InRange(root.GetProperty("accuracy").GetDouble(), 0.5, 1.0);
        Assert.InRange(root.GetProperty("loss").GetDouble(), 0.0, 2.0);
        Assert.True(root.GetProperty("samplesPerSecond").GetDouble() > 0);
        Assert.Equal(weights, root.GetProperty("weights").GetString());
        var content = SafetensorsCodec.ReadFile(weights);
        Assert.Equal(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"], content.Tensors.Select(t => t.Name));
        Assert.Equal("40", content.Metadata["step"]);
        Assert.Contains("step 40/40", result.Stderr);   // progress goes to stderr under --json
    }

    [Theory]
    [InlineData("mlp", 1, 0.83, 938)]
    [InlineData("lenet", 3, 0.85, 2814)]
    public void Fashion_mnist_reaches_the_accuracy_the_issue_asks_for(string model, int epochs, double minAccuracy, int steps)
    {
        var weights = Path.Combine(_folder, $"{model}.safetensors");
        var result = Cli.Run(TimeSpan.FromMinutes(5), "run", JobFile($$"""
            { "name": "fmnist-{{model}}", "model": "{{model}}", "dataset": { "name": "fashion-mnist" }, "epochs": {{epochs}}, "batchSizePerDevice": 64,
              "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 } }
            """), "--json", "--out", weights);
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal(steps, json.RootElement.GetProperty("steps").GetInt32());
        Assert.True(json.RootElement.GetProperty("accuracy").GetDouble() >= minAccuracy, result.Stdout);
    }
}
