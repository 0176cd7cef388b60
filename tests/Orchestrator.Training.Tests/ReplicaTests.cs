using Orchestrator.Core.Jobs;
using Orchestrator.Training.Engine;
using Orchestrator.Training.Safetensors;
using Orchestrator.Training.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Training.Tests;

/// <summary>Real TorchSharp training on the real Fashion-MNIST, kept to a few hundred steps.</summary>
public class ReplicaTests
{
    private static JobSpec Job(string model = "mlp", int workers = 1, int batch = 64, string optimizer = """{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""",
        int warmup = 0) =>
        JobSpecParser.Parse($$"""
            { "name": "t", "model": "{{model}}", "dataset": { "name": "fashion-mnist" }, "workers": {{workers}},
              "batchSizePerDevice": {{batch}}, "optimizer": {{optimizer}}, "lrSchedule": { "warmupSteps": {{warmup}} }, "epochs": 1 }
            """);

    [Theory]
    [InlineData("mlp", """{ "type": "sgd", "lr": 0.05, "momentum": 0.9, "weightDecay": 0.0001 }""")]
    [InlineData("mlp", """{ "type": "adam", "lr": 0.001 }""")]
    [InlineData("lenet", """{ "type": "sgd", "lr": 0.05, "momentum": 0.9 }""")]
    public void A_short_real_training_run_lowers_the_loss(string model, string optimizer)
    {
        var job = Job(model, optimizer: optimizer, warmup: 10);
        using var replica = new Replica(job, TestData.Workload(job.Model), CPU);
        var plan = new EpochPlan(replica.TrainCount, job.Seed, 0, 1, job.GlobalBatchSize);
        var losses = new List<double>();
        for (int step = 0; step < 150; step++)
        {
            losses.Add(replica.ComputeGradients(plan.GlobalIndices(step), plan.GlobalCount(step)) / plan.GlobalCount(step));
            replica.ApplyStep(step);
        }
        double first = losses.Take(10).Average(), last = losses.TakeLast(20).Average();
        Assert.InRange(first, 1.5, 2.6);    // about ln(10) = 2.30 for an untrained classifier
        Assert.True(last < first * 0.5, $"loss fell only from {first:F3} to {last:F3}");
        var eval = replica.EvaluateSums(0, 2000);
        Assert.Equal(2000, eval.Count);
        double accuracy = eval.Sums["accuracy"] / eval.Count;
        Assert.True(accuracy > 0.6, $"held-out accuracy {accuracy:F3} after 150 steps");
    }

    [Fact]
    public void A_step_leaves_no_live_tensors_behind()
    {
        var job = Job();
        using var replica = new Replica(job, TestData.Workload(job.Model), CPU);
        var plan = new EpochPlan(replica.TrainCount, job.Seed, 0, 1, job.GlobalBatchSize);
        void Step(int s) { replica.ComputeGradients(plan.GlobalIndices(s), plan.GlobalCount(s)); replica.ApplyStep(s); }
        Step(0); Step(1);   // the optimizer's momentum buffers are created here, on purpose
        long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int s = 2; s < 12; s++) Step(s);
        replica.EvaluateSums(0, 500);
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Two_replicas_with_summed_gradients_follow_one_replica_with_twice_the_batch()
    {
        // The core of data-parallel equivalence, without the cluster: W=2 replicas with batch 32,
        // gradients summed (what the all-reduce will do), against one replica with batch 64.
        var data = TestData.Workload("mlp");
        var job2 = Job(workers: 2, batch: 32);
        var job1 = Job(workers: 1, batch: 64);
        using var r0 = new Replica(job2, data, CPU);
        using var r1 = new Replica(job2, data, CPU);
        using var single = new Replica(job1, data, CPU);
        var plan2 = new EpochPlan(r0.TrainCount, job2.Seed, 0, 2, 32);
        var plan1 = new EpochPlan(single.TrainCount, job1.Seed, 0, 1, 64);
        for (int step = 0; step < 30; step++)
        {
            int count = plan2.GlobalCount(step);
            r0.ComputeGradients(plan2.ReplicaIndices(step, 0), count);
            r1.ComputeGradients(plan2.ReplicaIndices(step, 1), count);
            SumGradientsInto(r0, r1);
            r0.ApplyStep(step);
            r1.ApplyStep(step);
            single.ComputeGradients(plan1.GlobalIndices(step), plan1.GlobalCount(step));
            single.ApplyStep(step);
        }
        var a = ModelWeights.Export(r0.Model);
        var b = ModelWeights.Export(r1.Model);
        var c = ModelWeights.Export(single.Model);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Data.ToArray(), b[i].Data.ToArray());   // replicas bit-identical
            var diff = ModelWeights.ToDoubles(a[i]).Zip(ModelWeights.ToDoubles(c[i]), (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff <= 1e-5, $"{a[i].Name}: max abs difference {diff} from the single replica");
        }
    }

    private static void SumGradientsInto(Replica a, Replica b)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (pa, pb) in a.Model.parameters().Zip(b.Model.parameters()))
        {
            var sum = pa.grad!.add(pb.grad!);
            pa.grad!.copy_(sum);
            pb.grad!.copy_(sum);
        }
    }

    [Fact]
    public void Saved_weights_load_back_into_a_fresh_replica_with_the_same_results()
    {
        var job = Job();
        var data = TestData.Workload(job.Model);
        var path = Path.Combine(Directory.CreateTempSubdirectory("weights-").FullName, "w.safetensors");
        using var trained = new Replica(job, data, CPU);
        var plan = new EpochPlan(trained.TrainCount, job.Seed, 0, 1, 64);
        for (int s = 0; s < 20; s++) { trained.ComputeGradients(plan.GlobalIndices(s), 64); trained.ApplyStep(s); }
        ModelWeights.Save(trained.Model, path);

        using var fresh = new Replica(job with { Seed = 7 }, data, CPU);
        ModelWeights.Import(fresh.Model, SafetensorsCodec.ReadFile(path));
        Assert.Equal(trained.EvaluateSums(0, 1000).Sums, fresh.EvaluateSums(0, 1000).Sums);
        Directory.Delete(Path.GetDirectoryName(path)!, true);
    }

    [Fact]
    public void Weights_for_another_model_are_refused_by_name()
    {
        using var mlp = TestData.Model("mlp", 1);
        using var lenet = TestData.Model("lenet", 1);
        var content = SafetensorsCodec.Decode(SafetensorsCodec.Encode(ModelWeights.Export(lenet)));
        var ex = Assert.Throws<InvalidDataException>(() => ModelWeights.Import(mlp, content));
        Assert.Contains("unexpected [conv1.weight", ex.Message);
    }

    [Fact]
    public void Warmup_ramps_the_learning_rate_linearly()
    {
        var job = Job(warmup: 4);
        double[] expected = [0.0125, 0.025, 0.0375, 0.05, 0.05];
        for (int s = 0; s < expected.Length; s++)
            Assert.Equal(expected[s], Optim.OptimizerFactory.LearningRateAt(job.Optimizer, job.LrSchedule, s), 12);
    }
}
