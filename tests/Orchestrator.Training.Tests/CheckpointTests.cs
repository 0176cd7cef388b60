using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Orchestrator.Core.Jobs;
using Orchestrator.Training.Checkpoints;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Safetensors;
using static TorchSharp.torch;

namespace Orchestrator.Training.Tests;

/// <summary>Checkpoints on real files from real training: exact resume, verification, retention, and a reader that is not ours.</summary>
[Collection(SingleThreadedTorch.Name)]
public sealed class CheckpointTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("ckpt-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static JobSpec Job(string optimizer, int maxSteps, int everySteps, int workers = 1, int batch = 32) => JobSpecParser.Parse($$"""
        { "name": "ck", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": {{workers}}, "batchSizePerDevice": {{batch}},
          "optimizer": {{optimizer}}, "lrSchedule": { "warmupSteps": 5 }, "epochs": 1, "maxSteps": {{maxSteps}},
          "checkpoint": { "everySteps": {{everySteps}}, "keep": 2, "metric": "accuracy" } }
        """);

    private string Run(JobSpec job, string name, string? checkpoints = null, TrainingSnapshot? resume = null)
    {
        var path = Path.Combine(_folder, name + ".safetensors");
        LocalTrainingRun.Run(job, TestData.Workload(job.Model), CPU, path, checkpointDir: checkpoints, resume: resume);
        return path;
    }

    [Theory]
    [InlineData("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""")]
    [InlineData("""{ "type": "adam", "lr": 0.001 }""")]
    public void Resuming_from_step_S_to_T_equals_the_uninterrupted_run_to_T_bit_for_bit(string optimizer)
    {
        var job = Job(optimizer, maxSteps: 40, everySteps: 15);
        var checkpoints = Path.Combine(_folder, "ckpt");
        var straight = Run(job, "straight", checkpoints);
        Assert.Equal([15L, 30L, 40L], CheckpointFolder.List(checkpoints).Select(c => c.Step));
        Assert.All(CheckpointFolder.List(checkpoints), c => Assert.True(c.Verified, c.Problem));

        var snapshot = CheckpointFolder.Load(CheckpointFolder.StepFolder(checkpoints, 15));
        Assert.Equal(new TrainingPosition(15, 0, 15, 32), snapshot.Position);
        var resumed = Run(job, "resumed", resume: snapshot);
        var a = SafetensorsCodec.ReadFile(straight);
        var b = SafetensorsCodec.ReadFile(resumed);
        Assert.Equal(a.Tensors.Select(t => t.Name), b.Tensors.Select(t => t.Name));
        foreach (var t in a.Tensors) Assert.True(t.Data.Span.SequenceEqual(b[t.Name].Data.Span), $"{t.Name} differs after resume");

        // Without the optimizer's state the resume is not exact (SGD: the test would notice a lost momentum
        // buffer) or refused (Adam: its moments and step counts are required).
        var weightsOnly = snapshot with { OptimizerFile = SafetensorsCodec.Encode([]) };
        if (job.Optimizer.Type == "adam")
        {
            Assert.Throws<InvalidDataException>(() => Run(job, "weights-only", resume: weightsOnly));
            return;
        }
        var lossy = SafetensorsCodec.ReadFile(Run(job, "weights-only", resume: weightsOnly));
        Assert.Contains(a.Tensors, t => !t.Data.Span.SequenceEqual(lossy[t.Name].Data.Span));
    }

    [Fact]
    public void A_checkpoint_at_an_epoch_end_continues_in_the_next_epoch()
    {
        var job = JobSpecParser.Parse("""
            { "name": "ck", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "batchSizePerDevice": 6000, "epochs": 2,
              "checkpoint": { "everySteps": 1000, "keep": 1, "metric": "loss" } }
            """);
        var checkpoints = Path.Combine(_folder, "epochs");
        var straight = SafetensorsCodec.ReadFile(Run(job, "two-epochs", checkpoints));
        Assert.Equal([10L, 20L], CheckpointFolder.List(checkpoints).Select(c => c.Step));
        var snapshot = CheckpointFolder.Load(CheckpointFolder.StepFolder(checkpoints, 10));
        Assert.Equal(new TrainingPosition(10, 1, 0, 6000), snapshot.Position);
        var resumed = SafetensorsCodec.ReadFile(Run(job, "second-epoch", resume: snapshot));
        foreach (var t in straight.Tensors) Assert.True(t.Data.Span.SequenceEqual(resumed[t.Name].Data.Span), t.Name);
    }

    [Fact]
    public void A_damaged_latest_checkpoint_is_reported_unverified_and_the_one_before_it_is_chosen()
    {
        var checkpoints = Path.Combine(_folder, "damaged");
        Run(Job("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""", maxSteps: 20, everySteps: 10), "d", checkpoints);
        var latest = CheckpointFolder.StepFolder(checkpoints, 20);
        var model = Path.Combine(latest, CheckpointFolder.ModelFileName);
        var bytes = File.ReadAllBytes(model);
        File.WriteAllBytes(model, bytes[..^100]);

        var list = CheckpointFolder.List(checkpoints);
        Assert.True(list[0].Verified);
        Assert.False(list[1].Verified);
        Assert.Contains("model.safetensors", list[1].Problem);
        Assert.Equal(10, CheckpointFolder.LatestVerified(checkpoints)!.Step);
        Assert.Throws<CheckpointInvalidException>(() => CheckpointFolder.Load(latest));
    }

    [Fact]
    public void Verification_rejects_each_kind_of_damage_with_its_own_message()
    {
        var checkpoints = Path.Combine(_folder, "fuzz");
        Run(Job("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""", maxSteps: 5, everySteps: 5), "f", checkpoints);
        var original = CheckpointFolder.StepFolder(checkpoints, 5);
        string Mutate(string name, Action<string> change)
        {
            var copy = Path.Combine(_folder, "mutants", name, Path.GetFileName(original));
            Directory.CreateDirectory(copy);
            foreach (var f in Directory.GetFiles(original)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
            change(copy);
            var info = CheckpointFolder.Verify(copy);
            Assert.False(info.Verified, name);
            return info.Problem!;
        }
        string Model(string f) => Path.Combine(f, CheckpointFolder.ModelFileName);
        string Manifest(string f) => Path.Combine(f, CheckpointFolder.ManifestFileName);

        Assert.Contains("SHA-256", Mutate("flipped", f => { var b = File.ReadAllBytes(Model(f)); b[^5] ^= 0x40; File.WriteAllBytes(Model(f), b); }));
        Assert.Contains("bytes, the manifest says", Mutate("extra-byte", f => File.AppendAllText(Model(f), "x")));
        Assert.Contains("manifest missing", Mutate("no-manifest", f => File.Delete(Manifest(f))));
        Assert.Contains("manifest names", Mutate("other-file", f => File.WriteAllText(Manifest(f),
            File.ReadAllText(Manifest(f)).Replace("\"optimizer.safetensors\"", "\"../other.safetensors\""))));
        Assert.Contains("manifest unreadable", Mutate("bad-json", f => File.WriteAllText(Manifest(f), "{ \"format\": ")));
        Assert.Contains("cannot read", Mutate("missing-file", f => File.Delete(Path.Combine(f, CheckpointFolder.OptimizerFileName))));
        Assert.True(CheckpointFolder.Verify(original).Verified);
    }

    [Fact]
    public void Retention_keeps_the_best_by_the_metric_and_the_newest_and_waits_for_unevaluated_ones()
    {
        var checkpoints = Path.Combine(_folder, "retention");
        Run(Job("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""", maxSteps: 25, everySteps: 5), "r", checkpoints);
        void Record(long step, double accuracy, string rank = "accuracy", bool higherIsBetter = true) =>
            CheckpointFolder.RecordEvaluation(CheckpointFolder.StepFolder(checkpoints, step),
                new Dictionary<string, double> { ["accuracy"] = accuracy, ["loss"] = 1 - accuracy }, rank, higherIsBetter);
        double[] accuracy = [0.5, 0.9, 0.7, 0.6];   // steps 5, 10, 15, 20; step 25 is not evaluated yet
        for (int i = 0; i < accuracy.Length; i++) Record(5 * (i + 1), accuracy[i]);

        var deleted = CheckpointFolder.ApplyRetention(checkpoints, keep: 2);
        Assert.Equal([5L, 20L], deleted.OrderBy(s => s));
        Assert.Equal([10L, 15L, 25L], CheckpointFolder.List(checkpoints).Select(c => c.Step));

        Record(25, 0.1);
        Assert.Empty(CheckpointFolder.ApplyRetention(checkpoints, keep: 2));   // the worst, but the newest
        foreach (var (step, a) in new[] { (10L, 0.9), (15L, 0.7), (25L, 0.1) }) Record(step, a, "loss", higherIsBetter: false);
        Assert.Equal([15L], CheckpointFolder.ApplyRetention(checkpoints, keep: 1));  // loss: 0.1 at 10 (kept), 0.3 at 15, 0.9 at 25 (the newest)
    }

    [Fact]
    public void A_reader_written_from_the_format_specification_reads_the_names_shapes_and_values()
    {
        var checkpoints = Path.Combine(_folder, "python");
        Run(Job("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""", maxSteps: 3, everySteps: 3), "p", checkpoints);
        var folder = CheckpointFolder.StepFolder(checkpoints, 3);
        foreach (var file in new[] { CheckpointFolder.ModelFileName, CheckpointFolder.OptimizerFileName })
        {
            var path = Path.Combine(folder, file);
            var start = new ProcessStartInfo("python3", [Path.Combine(AppContext.BaseDirectory, "read_safetensors.py"), path])
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var python = Process.Start(start)!;
            var output = python.StandardOutput.ReadToEnd();
            python.WaitForExit();
            Assert.True(python.ExitCode == 0, python.StandardError.ReadToEnd());
            var read = JsonDocument.Parse(output).RootElement.GetProperty("tensors");
            var ours = SafetensorsCodec.ReadFile(path);
            Assert.Equal(ours.Tensors.Select(t => t.Name).Order(), read.EnumerateObject().Select(p => p.Name).Order());
            foreach (var t in ours.Tensors.Where(t => t.Dtype == "F32"))
            {
                var entry = read.GetProperty(t.Name);
                Assert.Equal(t.Shape, entry.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
                var values = MemoryMarshal.Cast<byte, float>(t.Data.Span).ToArray();
                Assert.Equal(values[0], entry.GetProperty("first").GetDouble(), 6);
                Assert.Equal(values.Sum(v => (double)v), entry.GetProperty("sum").GetDouble(), 3);
            }
        }
        Assert.Contains("fc1.weight", SafetensorsCodec.ReadFile(Path.Combine(folder, CheckpointFolder.ModelFileName)).Tensors.Select(t => t.Name));
    }

    [Fact]
    public void A_folder_that_cannot_take_the_write_leaves_no_half_checkpoint_behind()
    {
        var checkpoints = Path.Combine(_folder, "readonly");
        Run(Job("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""", maxSteps: 5, everySteps: 5), "w", checkpoints);
        var good = CheckpointFolder.Load(CheckpointFolder.StepFolder(checkpoints, 5));
        // A file where the next step's folder would go: the write fails like a full or read-only disk would.
        var blocked = Path.Combine(_folder, "blocked");
        File.WriteAllText(blocked, "not a folder");
        Assert.ThrowsAny<IOException>(() => CheckpointFolder.Write(blocked, good));
        Assert.True(CheckpointFolder.Verify(CheckpointFolder.StepFolder(checkpoints, 5)).Verified);
        Assert.Equal(0, CheckpointFolder.RemoveLeftovers(checkpoints));
    }

    [Fact]
    public void A_step_rewritten_with_another_digest_replaces_the_old_checkpoint_only_once_the_new_one_is_committed()
    {
        var checkpoints = Path.Combine(_folder, "rewrite");
        Run(Job("""{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""", maxSteps: 5, everySteps: 5), "r1", checkpoints);
        var folder = CheckpointFolder.StepFolder(checkpoints, 5);
        var old = CheckpointFolder.Load(folder);
        var other = old with { Digest = "another-generation-digest", Generation = 2 };
        CheckpointFolder.Write(checkpoints, other);
        var now = CheckpointFolder.Verify(folder);
        Assert.True(now.Verified, now.Problem);
        Assert.Equal("another-generation-digest", now.Manifest!.Digest);
        Assert.Equal([folder], Directory.GetDirectories(checkpoints));   // nothing set aside or half-built is left

        // A crash between setting the old one aside and moving the new one in: the old one comes back.
        var asideOld = folder + ".old-crash";
        Directory.Move(folder, asideOld);
        Directory.CreateDirectory(folder + ".new-crash");
        File.WriteAllText(Path.Combine(folder + ".new-crash", "model.safetensors"), "half");
        Assert.Empty(CheckpointFolder.List(checkpoints));   // neither counts as a checkpoint
        Assert.Equal(2, CheckpointFolder.RemoveLeftovers(checkpoints));
        Assert.True(CheckpointFolder.Verify(folder).Verified);
        Assert.Equal([folder], Directory.GetDirectories(checkpoints));
    }
}
