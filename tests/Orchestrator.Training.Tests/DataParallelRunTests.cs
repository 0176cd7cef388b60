using Orchestrator.Core.Jobs;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Safetensors;
using static TorchSharp.torch;

namespace Orchestrator.Training.Tests;

/// <summary>
/// The data-parallel step loop without a cluster: two "workers" on two threads whose reducer sums their
/// buffers in memory, and local devices (CPU replicas), against the single-replica reference run.
/// Alone in its collection: libtorch's thread count is process-wide, and another test changing it
/// mid-run would change the float rounding of one "worker" but not the other.
/// </summary>
[Collection(SingleThreadedTorch.Name)]
public sealed class DataParallelRunTests
{
    private static JobSpec Job(int workers, int devicesPerWorker, int batch) => JobSpecParser.Parse($$"""
        { "name": "dp", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": {{workers}}, "devicesPerWorker": {{devicesPerWorker}},
          "batchSizePerDevice": {{batch}}, "maxSteps": 25, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 }, "seed": 3 }
        """);

    [Fact]
    public void Two_workers_summing_in_memory_equal_the_reference_run_to_the_bit()
    {
        var job = Job(workers: 2, devicesPerWorker: 1, batch: 16);
        var reducer = new InMemoryReducer(2);
        var dir = Directory.CreateTempSubdirectory("dp-").FullName;
        var results = new DataParallelResult[2];
        var threads = Enumerable.Range(0, 2).Select(rank => new Thread(() =>
        {
            set_num_threads(1);
            results[rank] = DataParallelRun.Run(job, TestData.Workload(job.Model), [CPU], new WorkerPlacement(rank, 2, 1),
                reducer.For(rank), rank == 0 ? Path.Combine(dir, "dp.safetensors") : null);
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();

        Assert.Equal(results[0].Digest, results[1].Digest);
        Assert.Null(results[1].Evaluation);
        Assert.Equal(25, results[0].Steps);
        set_num_threads(1);
        LocalTrainingRun.Run(job, TestData.Workload(job.Model), CPU, Path.Combine(dir, "ref.safetensors"));
        AssertSameWeights(Path.Combine(dir, "ref.safetensors"), results[0].WeightsPath!);
    }

    [Fact]
    public void Local_devices_on_one_worker_equal_the_reference_run_to_the_bit()
    {
        var job = Job(workers: 1, devicesPerWorker: 3, batch: 16);
        var dir = Directory.CreateTempSubdirectory("dp-").FullName;
        set_num_threads(1);
        var result = DataParallelRun.Run(job, TestData.Workload(job.Model), [CPU, CPU, CPU], new WorkerPlacement(0, 1, 3),
            new InMemoryReducer(1).For(0), Path.Combine(dir, "dp.safetensors"));
        LocalTrainingRun.Run(job, TestData.Workload(job.Model), CPU, Path.Combine(dir, "ref.safetensors"));
        AssertSameWeights(Path.Combine(dir, "ref.safetensors"), result.WeightsPath!);
        Assert.InRange(result.CommunicationShare, 0, 1);
    }

    private static void AssertSameWeights(string a, string b)
    {
        var left = SafetensorsCodec.ReadFile(a);
        var right = SafetensorsCodec.ReadFile(b);
        Assert.Equal(left.Tensors.Select(t => t.Name).Order(), right.Tensors.Select(t => t.Name).Order());
        foreach (var t in left.Tensors) Assert.True(t.Data.Span.SequenceEqual(right[t.Name]!.Data.Span), $"{t.Name} differs");
    }

    /// <summary>
    /// The example transformer (a unit per linear layer and norm, so backward marks most of the model ready early) on
    /// two in-memory workers with 16 KiB buckets: reduced while backward runs, after it, and by `run`, with float32 and
    /// bf16 on the "wire": the same weights, and most buckets left before backward ended.
    /// </summary>
    [Theory]
    [InlineData("none", 1)]
    [InlineData("bf16", 1)]
    [InlineData("none", 2)]   // two local replicas: the marks are on the last one's modules, the buffer sums both
    public void Buckets_reduced_while_backward_runs_give_the_bytes_of_reducing_after_it_and_of_run(string compression, int devices)
    {
        JobSpec Transformer(bool overlap) => JobSpecParser.Parse($$"""
            { "name": "ov", "workload": { "package": "{{Orchestrator.TestSupport.Packages.Example("CharTransformer")}}", "type": "Examples.CharTransformer.CharLanguageModel",
              "args": { "layers": 2, "width": 32, "heads": 2, "context": 16 } }, "workers": 2, "devicesPerWorker": {{devices}}, "maxSteps": 12, "batchSizePerDevice": 4, "seed": 5,
              "optimizer": { "type": "adamw", "lr": 0.003, "clipGradNorm": 1.0 },
              "allReduce": { "bucketBytes": 16384, "compression": "{{compression}}", "overlap": {{(overlap ? "true" : "false")}} } }
            """);
        var dir = Directory.CreateTempSubdirectory("ov-").FullName;
        DataParallelResult[] RunBoth(JobSpec job, string name)
        {
            using var loaded = Workloads.LoadedWorkload.Load(job);
            var reducer = new InMemoryReducer(2, Collectives.WireCodec.Parse(compression), bucketElements: 4096);
            var results = new DataParallelResult[2];
            var threads = Enumerable.Range(0, 2).Select(rank => new Thread(() =>
            {
                set_num_threads(1);
                results[rank] = DataParallelRun.Run(job, loaded.Workload, Enumerable.Repeat(CPU, devices).ToArray(), new WorkerPlacement(rank, 2, devices), reducer.For(rank),
                    rank == 0 ? Path.Combine(dir, name + ".safetensors") : null);
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();
            Assert.Equal(results[0].Digest, results[1].Digest);
            return results;
        }
        var overlapped = RunBoth(Transformer(overlap: true), "overlapped");
        var after = RunBoth(Transformer(overlap: false), "after");
        var job = Transformer(overlap: false);
        using (var loaded = Workloads.LoadedWorkload.Load(job))
        {
            set_num_threads(1);
            LocalTrainingRun.Run(job, loaded.Workload, CPU, Path.Combine(dir, "run.safetensors"));
        }
        AssertSameWeights(overlapped[0].WeightsPath!, after[0].WeightsPath!);
        AssertSameWeights(Path.Combine(dir, "run.safetensors"), overlapped[0].WeightsPath!);
        // 12 steps, the first a probe; every later step's buckets all went before backward ended but those holding
        // the embeddings (fed by token ids, which need no gradient, so no mark says when they are done).
        Assert.Equal(0, after[0].Buckets);
        Assert.True(overlapped[0].Buckets >= 12 * 3, $"{overlapped[0].Buckets} buckets");
        Assert.True(overlapped[0].BucketsEarly >= overlapped[0].Buckets / 2, $"{overlapped[0].BucketsEarly} of {overlapped[0].Buckets} buckets left during backward");
    }

    /// <summary>A barrier-based all-reduce across threads: every rank gets what a ring of them computes (RingArithmetic).</summary>
    private sealed class InMemoryReducer(int ranks, Collectives.WireFormat format = Collectives.WireFormat.Float32, int bucketElements = int.MaxValue)
    {
        private readonly Barrier _barrier = new(ranks);
        private readonly float[]?[] _buffers = new float[ranks][];
        private float[]? _sum;
        private readonly Collectives.WireFormat _format = format;
        private readonly int _bucketElements = bucketElements;   // the ring reduces what it is given bucket by bucket

        public IGradientReducer For(int rank) => new Rank(this, rank);

        private sealed class Rank(InMemoryReducer shared, int rank) : IGradientReducer
        {
            public void SumAcrossWorkers(Memory<float> gradients)
            {
                shared._buffers[rank] = gradients.ToArray();
                shared._barrier.SignalAndWait();
                if (rank == 0)
                {
                    var sum = new float[gradients.Length];
                    Collectives.RingArithmetic.Reduce(shared._buffers!, Math.Min(shared._bucketElements, Math.Max(1, gradients.Length)), shared._format, sum);
                    shared._sum = sum;
                }
                shared._barrier.SignalAndWait();
                shared._sum.AsSpan().CopyTo(gradients.Span);
                shared._barrier.SignalAndWait();
            }
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SingleThreadedTorch
{
    public const string Name = "single-threaded libtorch";
}
