using Orchestrator.TestSupport;

using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Workloads;
using static TorchSharp.torch;

namespace Orchestrator.Training.Tests;

/// <summary>Workload packages loaded as the workers load them: real build outputs, real zips, real collectible load contexts.</summary>
public sealed class WorkloadPackageTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("packages-").FullName;

    public void Dispose() => Directory.Delete(_folder, true);

    private static JobSpec Job(string package, string type, string args = "{}", int maxSteps = 3) => JobSpecParser.Parse($$"""
        { "name": "pkg", "workload": { "package": "{{package}}", "type": "{{type}}", "args": {{args}} },
          "maxSteps": {{maxSteps}}, "batchSizePerDevice": 8, "optimizer": { "type": "adam", "lr": 0.001 } }
        """);

    private static JobSpec Transformer(string package, string args = """{ "layers": 1, "width": 32, "heads": 2, "context": 16 }""") =>
        Job(package, "Examples.CharTransformer.CharLanguageModel", args);

    [Fact]
    public void The_transformer_package_is_kilobytes_and_trains_from_its_build_folder()
    {
        var folder = Packages.Example("CharTransformer");
        var files = Directory.GetFiles(folder);
        Assert.DoesNotContain(files, f => Path.GetFileName(f) is "TorchSharp.dll" or "Orchestrator.Sdk.dll" || f.Contains("libtorch"));
        Assert.True(files.Sum(f => new FileInfo(f).Length) < 100_000, "the package carries only its own files");

        using var loaded = LoadedWorkload.Load(Transformer(folder));
        var result = LocalTrainingRun.Run(Transformer(folder), loaded.Workload, CPU, Path.Combine(_folder, "w.safetensors"));
        Assert.Equal(3, result.Steps);
        Assert.Equal(["loss", "perplexity"], result.Metrics.Values.Keys.Order());
        Assert.Equal(Math.Exp(result.Metrics.Loss!.Value), result.Metrics.Values["perplexity"], 9);
        Assert.Equal(("loss", false), (result.Metrics.RankMetric, result.Metrics.HigherIsBetter));
    }

    [Theory]
    [InlineData("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""")]
    [InlineData("""{ "type": "adam", "lr": 0.003 }""")]
    [InlineData("""{ "type": "adamw", "lr": 0.003, "clipGradNorm": 0.5 }""")]
    public void The_transformer_resumed_from_a_checkpoint_equals_the_uninterrupted_run_bit_for_bit(string optimizer)
    {
        var job = JobSpecParser.Parse($$"""
            { "name": "lm", "workload": { "package": "{{Packages.Example("CharTransformer")}}", "type": "Examples.CharTransformer.CharLanguageModel",
              "args": { "layers": 2, "width": 32, "heads": 2, "context": 16 } }, "epochs": 3, "maxSteps": 25, "batchSizePerDevice": 8,
              "optimizer": {{optimizer}}, "lrSchedule": { "warmupSteps": 5, "decay": "cosine" }, "checkpoint": { "everySteps": 10 } }
            """);
        using var loaded = LoadedWorkload.Load(job);
        var checkpoints = Path.Combine(_folder, "ckpt");
        var straight = Path.Combine(_folder, "straight.safetensors");
        var resumed = Path.Combine(_folder, "resumed.safetensors");
        LocalTrainingRun.Run(job, loaded.Workload, CPU, straight, checkpointDir: checkpoints);
        var snapshot = Checkpoints.CheckpointFolder.Load(Checkpoints.CheckpointFolder.StepFolder(checkpoints, 10));
        LocalTrainingRun.Run(job, loaded.Workload, CPU, resumed, resume: snapshot);
        var (a, b) = (Safetensors.SafetensorsCodec.ReadFile(straight), Safetensors.SafetensorsCodec.ReadFile(resumed));
        Assert.Contains(a.Tensors, t => t.Name == "blocks.1.attn.qkv.weight");
        foreach (var t in a.Tensors) Assert.True(t.Data.Span.SequenceEqual(b[t.Name].Data.Span), $"{t.Name} differs after resume");
    }

    [Fact]
    public void A_zipped_package_loads_like_its_folder()
    {
        var zip = Path.Combine(_folder, "lm.zip");
        ZipFile.CreateFromDirectory(Packages.Example("CharTransformer"), zip);
        using var loaded = LoadedWorkload.Load(Transformer(zip));
        Assert.Equal("Examples.CharTransformer.CharLanguageModel", loaded.Workload.GetType().FullName);
    }

    [Fact]
    public void After_a_job_its_load_context_is_collected()
    {
        var weak = TrainAndUnload(Transformer(Packages.Example("CharTransformer")), Path.Combine(_folder, "u.safetensors"));
        for (int i = 0; i < 20 && weak.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.False(weak.IsAlive, "the package's load context is still reachable after the job ended");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference TrainAndUnload(JobSpec job, string weights)
    {
        using var loaded = LoadedWorkload.Load(job);
        LocalTrainingRun.Run(job, loaded.Workload, CPU, weights);
        return loaded.LoadContext!;
    }

    [Fact]
    public void Twenty_jobs_from_twenty_packages_leave_the_memory_where_the_first_left_it()
    {
        var source = Packages.Example("Minimal");
        long afterFirst = 0;
        for (int i = 0; i < 20; i++)
        {
            // Twenty different packages: the same build with a file of its own, in a folder of its own.
            var package = Path.Combine(_folder, $"minimal-{i}");
            Directory.CreateDirectory(package);
            foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(package, Path.GetFileName(file)));
            File.WriteAllText(Path.Combine(package, "build-id.txt"), i.ToString());
            TrainAndUnload(Job(package, "Examples.Minimal.SineRegression", """{ "samples": 256 }"""), Path.Combine(_folder, $"m{i}.safetensors"));
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            if (i == 0) afterFirst = Process.GetCurrentProcess().WorkingSet64;
        }
        long growth = Process.GetCurrentProcess().WorkingSet64 - afterFirst;
        output.WriteLine($"RSS after the first package {afterFirst >> 20} MiB, after the 20th {(afterFirst + growth) >> 20} MiB ({growth / 1024.0 / 1024.0:+0.0;-0.0} MiB)");
        Assert.True(growth < 100L << 20, $"RSS grew by {growth >> 20} MiB over 19 more packages");
    }

    [Theory]
    [InlineData("""{ "layers": 0 }""", "workload.args.layers", "must be >= 1, was 0")]
    [InlineData("""{ "layers": "four" }""", "workload.args.layers", "must be an integer, was the string \"four\"")]
    [InlineData("""{ "width": 30, "heads": 4 }""", "workload.args.heads", "must divide width (30), was 4")]
    [InlineData("""{ "layerz": 2 }""", "workload.args.layerz", "unknown argument")]
    [InlineData("""{ "text": "/nonexistent/corpus.txt" }""", "workload.args.text", "no such file: /nonexistent/corpus.txt")]
    public void Invalid_arguments_name_the_field(string args, string field, string problem)
    {
        var ex = Assert.Throws<WorkloadArgumentException>(() => LoadedWorkload.Load(Transformer(Packages.Example("CharTransformer"), args)));
        Assert.Equal((field, problem), (ex.Field, ex.Problem));
        Assert.Equal($"{field}: {problem}", ex.Message);
    }

    [Fact]
    public void Bad_packages_are_refused_with_the_reason()
    {
        var bad = Packages.Fixture("BadWorkloads");
        string Refusal(JobSpec job) => Assert.Throws<WorkloadLoadException>(() => LoadedWorkload.Load(job)).Message;

        var text = Path.Combine(_folder, "notes.txt");
        File.WriteAllText(text, "not a package");
        Assert.Contains("neither a folder nor a .zip file", Refusal(Job(text, "A.B")));
        Assert.Contains("no such folder or file", Refusal(Job(Path.Combine(_folder, "missing"), "A.B")));
        Assert.Contains("no type Fixtures.Nothing in the package's assemblies (BadWorkloads.dll)", Refusal(Job(bad, "Fixtures.Nothing")));
        Assert.Contains("Fixtures.NotAWorkload does not implement Orchestrator.Sdk.IWorkload", Refusal(Job(bad, "Fixtures.NotAWorkload")));
        Assert.Contains("Fixtures.ThrowingConstructor: its constructor failed: InvalidOperationException: the corpus is missing",
            Refusal(Job(bad, "Fixtures.ThrowingConstructor")));
        var sdk = Refusal(Job(Packages.Fixture("OtherSdkWorkload"), "Fixtures.FutureWorkload"));
        Assert.Contains("built against Orchestrator.Sdk 2.0.0.0", sdk);
        Assert.Contains($"this host has SDK {SdkVersion.Current}", sdk);
    }

    [Fact]
    public void A_zip_entry_that_escapes_its_folder_is_refused_and_nothing_is_written_outside()
    {
        var zip = Path.Combine(_folder, "evil.zip");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
        {
            using (var writer = new StreamWriter(archive.CreateEntry("ok.txt").Open())) writer.Write("fine");
            using (var writer = new StreamWriter(archive.CreateEntry("../../escaped.txt").Open())) writer.Write("gotcha");
        }
        var target = Path.Combine(_folder, "unpacked", "pkg");
        var ex = Assert.Throws<WorkloadLoadException>(() => PackageFiles.Unzip(zip, target));
        Assert.Contains("entry '../../escaped.txt' points outside the package's folder", ex.Message);
        Assert.False(Directory.Exists(target));
        Assert.False(File.Exists(Path.Combine(_folder, "escaped.txt")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(_folder, "unpacked")));
    }

    [Fact]
    public void A_model_factory_that_throws_fails_the_run_with_its_message()
    {
        var job = Job(Packages.Fixture("BadWorkloads"), "Fixtures.ThrowingModel");
        using var loaded = LoadedWorkload.Load(job);
        var ex = Assert.Throws<InvalidOperationException>(() => LocalTrainingRun.Run(job, loaded.Workload, CPU, Path.Combine(_folder, "x.safetensors")));
        Assert.Equal("no such layer type: 'mamba'", ex.Message);
    }
}
