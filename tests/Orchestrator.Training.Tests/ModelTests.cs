using static TorchSharp.torch;

namespace Orchestrator.Training.Tests;

public class ModelTests
{
    [Fact]
    public void The_built_in_workloads_are_mlp_and_lenet()
    {
        Assert.Equal(["mlp", "lenet"], Core.Jobs.JobSpecParser.BuiltInModels);
        Assert.Throws<ArgumentException>(() => new Workloads.ImageClassification("resnet", new Core.Jobs.DatasetSpec("fashion-mnist", null)));
    }

    [Fact]
    public void Mlp_has_pytorch_parameter_names_and_shapes()
    {
        using var model = TestData.Model("mlp", 1);
        var shapes = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"], shapes.Keys);
        Assert.Equal([256L, 784], shapes["fc1.weight"]);
        Assert.Equal([128L, 256], shapes["fc2.weight"]);
        Assert.Equal([10L], shapes["fc3.bias"]);
    }

    [Fact]
    public void Lenet_has_the_classic_layout()
    {
        using var model = TestData.Model("lenet", 1);
        var shapes = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal([6L, 1, 5, 5], shapes["conv1.weight"]);
        Assert.Equal([16L, 6, 5, 5], shapes["conv2.weight"]);
        Assert.Equal([120L, 400], shapes["fc1.weight"]);
        Assert.Equal([84L, 120], shapes["fc2.weight"]);
        Assert.Equal([10L, 84], shapes["fc3.weight"]);
        using var output = ((nn.Module<Tensor, Tensor>)model).forward(zeros(3, 1, 28, 28));
        Assert.Equal([3L, 10], output.shape);
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("lenet")]
    public void The_same_seed_gives_identical_replicas_and_another_seed_does_not(string name)
    {
        using var a = TestData.Model(name, 42);
        using var b = TestData.Model(name, 42);
        using var c = TestData.Model(name, 43);
        foreach (var (key, value) in a.state_dict())
        {
            Assert.True(value.equal(b.state_dict()[key]).all().item<bool>(), $"{key} differs for the same seed");
            Assert.False(value.equal(c.state_dict()[key]).all().item<bool>() && value.numel() > 10, $"{key} equal for different seeds");
        }
    }
}
