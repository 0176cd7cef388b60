using Orchestrator.Core.Jobs;
using Orchestrator.TestSupport;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Workloads;
using static TorchSharp.torch;

namespace Orchestrator.Training.Tests;

/// <summary>
/// Does a model still learn when its gradients travel in 16 bits? `run` of a 2-worker job follows the ring's
/// arithmetic to the bit (the cluster tests prove that on both links), so this trains the example transformer
/// in one process, with the same job three times: float32, bf16 and fp16 on the wire.
/// </summary>
public sealed class CompressionConvergenceTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private const int Steps = 400;
    private readonly string _folder = Directory.CreateTempSubdirectory("compression-").FullName;

    public void Dispose() => Directory.Delete(_folder, true);

    private static JobSpec Job(string compression) => JobSpecParser.Parse($$"""
        { "name": "lm-{{compression}}", "workload": { "package": "{{Packages.Example("CharTransformer")}}", "type": "Examples.CharTransformer.CharLanguageModel",
          "args": { "text": "/usr/share/common-licenses/GPL-3", "layers": 2, "width": 64, "heads": 4, "context": 32 } },
          "workers": 2, "epochs": 100, "maxSteps": {{Steps}}, "batchSizePerDevice": 8, "seed": 42,
          "optimizer": { "type": "adamw", "lr": 0.003, "clipGradNorm": 1.0 }, "lrSchedule": { "warmupSteps": 20, "decay": "cosine", "minLr": 0.0003 },
          "allReduce": { "bucketBytes": 65536, "compression": "{{compression}}" } }
        """);

    [Fact]
    public void The_transformer_s_held_out_loss_with_16_bit_gradients_is_within_2_percent_of_float32_s_after_400_steps()
    {
        var losses = new Dictionary<string, double>();
        foreach (var compression in new[] { "none", "bf16", "fp16" })
        {
            var job = Job(compression);
            using var loaded = LoadedWorkload.Load(job);
            var result = LocalTrainingRun.Run(job, loaded.Workload, CPU, Path.Combine(_folder, compression + ".safetensors"));
            Assert.Equal(Steps, result.Steps);
            losses[compression] = result.Metrics.Loss!.Value;
        }
        output.WriteLine(string.Join(", ", losses.Select(kv => $"{kv.Key} {kv.Value:F6}")));
        // Untrained the loss is ln(vocabulary) ≈ 4.4 nats a character: the comparison is between models that learned.
        Assert.True(losses["none"] < 2.6, $"float32 held-out loss {losses["none"]:F4} after {Steps} steps");
        foreach (var compressed in new[] { "bf16", "fp16" })
        {
            Assert.True(Math.Abs(losses[compressed] - losses["none"]) <= 0.02 * losses["none"],
                $"{compressed}: held-out loss {losses[compressed]:F4} against float32's {losses["none"]:F4}");
            Assert.NotEqual(losses["none"], losses[compressed]);   // the rounding really happened
        }
    }
}
