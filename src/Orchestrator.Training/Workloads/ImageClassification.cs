using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Data;
using Orchestrator.Training.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Orchestrator.Training.Workloads;

/// <summary>
/// The built-in workloads <c>mlp</c> and <c>lenet</c>: image classification on an IDX pair (Fashion-MNIST,
/// MNIST, any MNIST-format files) or a `tensors` file, written against the SDK like any team's workload.
/// Images are float32 [N,1,H,W], normalized with the train split's pixel statistics where they are bytes;
/// the loss is cross-entropy, the metrics held-out accuracy and loss, checkpoints ranked by accuracy.
/// </summary>
public sealed class ImageClassification : Workload<Module<Tensor, Tensor>>
{
    private readonly string _model;
    private readonly ImageTensors _data;

    public ImageClassification(string model, DatasetSpec dataset)
    {
        if (Array.IndexOf(JobSpecParser.BuiltInModels, model) < 0)
            throw new ArgumentException($"unknown model '{model}'; built-in models: {string.Join(", ", JobSpecParser.BuiltInModels)}");
        _model = model;
        _data = ImageTensors.Load(dataset);
    }

    /// <summary>The dataset's name and size, for a run's header line.</summary>
    public string Describe() => $"{_data.Name} ({_data.TrainCount} train / {_data.TestCount} held-out)";

    public ModelInput Input => new(_data.Rows, _data.Columns, _data.Classes);

    public override Module<Tensor, Tensor> CreateModel() => _model == "mlp" ? new Mlp(Input) : new LeNet(Input);

    public override WorkloadData OpenData(DataSplit split, Device device)
    {
        var (images, labels) = split == DataSplit.Train ? _data.Train.Value : _data.Test.Value;
        var data = new TensorData(images, labels, device);
        return _data.Pixels is { } pixels ? new NormalizedPixels(data, pixels) : data;
    }

    public override Tensor LossSum(Module<Tensor, Tensor> model, Batch batch) =>
        functional.cross_entropy(model.forward(batch.Inputs), batch.Targets, reduction: Reduction.Sum);

    public override IReadOnlyDictionary<string, Tensor> EvaluationSums(Module<Tensor, Tensor> model, Batch batch)
    {
        var logits = model.forward(batch.Inputs);
        return new Dictionary<string, Tensor>
        {
            ["loss"] = functional.cross_entropy(logits, batch.Targets, reduction: Reduction.Sum),
            ["accuracy"] = logits.argmax(1).eq(batch.Targets).sum(),
        };
    }

    public override MetricRanking Ranking => MetricRanking.Higher("accuracy");

    public override void Dispose() => _data.Dispose();
}

/// <summary>The train split's pixel statistics: a batch of byte pixels becomes (pixel / 255 − mean) / std in float32.</summary>
internal sealed record PixelNormalization(float Mean, float Std);

/// <summary>
/// An image dataset's splits as CPU tensors, labels int64 [N], each made on first use (the checkpoint node
/// evaluates on the held-out split and never needs the train split). IDX images stay bytes [N,1,H,W] and
/// are normalized a batch at a time (<see cref="Pixels"/>): a worker holds Fashion-MNIST's 47 MB of pixels,
/// not 188 MB of floats, and the values are the same (each is one byte through the same three operations).
/// A `tensors` file's images are float32 already (<see cref="Pixels"/> null).
/// </summary>
internal sealed record ImageTensors(string Name, Lazy<(Tensor Images, Tensor Labels)> Train, Lazy<(Tensor Images, Tensor Labels)> Test,
    int TrainCount, int TestCount, int Rows, int Columns, int Classes, PixelNormalization? Pixels = null) : IDisposable
{
    public static ImageTensors Load(DatasetSpec spec) =>
        spec.Name == "tensors" ? FromTensorFile(spec.Path!) : FromIdx(ImageDataset.Load(DatasetLocator.Locate(spec)));

    private static ImageTensors FromIdx(ImageDataset data)
    {
        static (Tensor, Tensor) Split(ImageSplit s)
        {
            using var scope = NewDisposeScope();
            var images = tensor(s.Pixels, new long[] { s.Count, 1, s.Rows, s.Columns }).DetachFromDisposeScope();
            return (images, tensor(s.Labels, new long[] { s.Count }).to_type(ScalarType.Int64).DetachFromDisposeScope());
        }
        // Each lazy holds its own split only, so the managed bytes of a split go once its tensors are made.
        var (train, test) = (data.Train, data.Test);
        return new ImageTensors(data.Name, new(() => Split(train)), new(() => Split(test)),
            data.Train.Count, data.Test.Count, data.Train.Rows, data.Train.Columns, data.Classes, new PixelNormalization(data.Mean, data.Std));
    }

    /// <summary>
    /// A `tensors` file: <c>train.x</c>, <c>train.y</c>, <c>test.x</c>, <c>test.y</c>. Inputs [N,H,W] or
    /// [N,1,H,W] (images) or [N,D] (vectors, read as 1×D images); bytes are scaled to [0,1] and normalized
    /// like IDX pixels, floats are taken as they are; labels are integers from 0, the classes their maximum + 1.
    /// </summary>
    private static ImageTensors FromTensorFile(string path)
    {
        var tensors = TensorFile.Read(path);
        try
        {
            Tensor Take(string name) => tensors.TryGetValue(name, out var t) ? t
                : throw new JobSpecException("dataset.path", $"{path} has no tensor '{name}' (a tensors dataset holds train.x, train.y, test.x, test.y)");
            var (trainX, trainY, testX, testY) = (Take("train.x"), Take("train.y"), Take("test.x"), Take("test.y"));
            using var scope = NewDisposeScope();
            var trainImages = AsImages(trainX, "train.x", path);
            var testImages = AsImages(testX, "test.x", path);
            if (trainImages.shape[2] != testImages.shape[2] || trainImages.shape[3] != testImages.shape[3])
                throw new JobSpecException("dataset.path", $"{path}: test.x samples are [{string.Join(",", testX.shape.Skip(1))}] but train.x samples are [{string.Join(",", trainX.shape.Skip(1))}]");
            if (trainX.dtype == ScalarType.Byte)
            {
                using var s255 = 255.0.ToScalar();
                var mean = trainImages.div(s255).mean().item<float>();
                var std = trainImages.div(s255).std(unbiased: false).item<float>();
                using var meanScalar = mean.ToScalar();
                using var stdScalar = Math.Max(std, 1e-6f).ToScalar();
                trainImages = trainImages.div_(s255).sub_(meanScalar).div_(stdScalar);
                testImages = testImages.div_(s255).sub_(meanScalar).div_(stdScalar);
            }
            var trainLabels = AsLabels(trainY, "train.y", trainImages.shape[0], path);
            var testLabels = AsLabels(testY, "test.y", testImages.shape[0], path);
            int classes = (int)Math.Max(trainLabels.max().item<long>(), testLabels.max().item<long>()) + 1;
            (Tensor, Tensor) train = (trainImages.DetachFromDisposeScope(), trainLabels.DetachFromDisposeScope());
            (Tensor, Tensor) test = (testImages.DetachFromDisposeScope(), testLabels.DetachFromDisposeScope());
            return new ImageTensors(Path.GetFileName(path), new(train), new(test), (int)train.Item1.shape[0], (int)test.Item1.shape[0],
                (int)train.Item1.shape[2], (int)train.Item1.shape[3], classes);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    private static Tensor AsImages(Tensor x, string name, string path)
    {
        var images = x.dim() switch
        {
            2 => x.reshape(x.shape[0], 1, 1, x.shape[1]),
            3 => x.unsqueeze(1),
            4 when x.shape[1] == 1 => x,
            _ => throw new JobSpecException("dataset.path", $"{path}: {name} has shape [{string.Join(",", x.shape)}]; the built-in models take [N,D], [N,H,W] or [N,1,H,W]"),
        };
        if (images.shape[0] == 0) throw new JobSpecException("dataset.path", $"{path}: {name} has no samples");
        return images.to_type(ScalarType.Float32);
    }

    private static Tensor AsLabels(Tensor y, string name, long count, string path)
    {
        if (y.dim() != 1 || y.shape[0] != count)
            throw new JobSpecException("dataset.path", $"{path}: {name} has shape [{string.Join(",", y.shape)}], expected [{count}] (one label per sample)");
        if (y.dtype is not (ScalarType.Int64 or ScalarType.Byte))
            throw new JobSpecException("dataset.path", $"{path}: {name} is {y.dtype}; labels are I64 or U8");
        var labels = y.to_type(ScalarType.Int64);
        var negative = labels.lt(0).nonzero();
        if (negative.shape[0] > 0)
        {
            long at = negative[0, 0].item<long>();
            throw new JobSpecException("dataset.path", $"{path}: {name}[{at}] is {labels[at].item<long>()}; labels are class numbers from 0");
        }
        return labels;
    }

    public void Dispose()
    {
        foreach (var split in new[] { Train, Test })
            if (split.IsValueCreated)
            {
                split.Value.Images.Dispose();
                split.Value.Labels.Dispose();
            }
    }
}

/// <summary>Batches of byte pixels, normalized as they are taken (on the split's device).</summary>
internal sealed class NormalizedPixels(TensorData bytes, PixelNormalization normalization) : WorkloadData
{
    // Explicit Scalars that live as long as the split: an implicit one can be finalized while libtorch reads it (ScalarSafeSgd).
    private readonly Scalar _scale = 255f.ToScalar(), _mean = normalization.Mean.ToScalar(), _std = normalization.Std.ToScalar();

    public override int Count => bytes.Count;

    public override Batch Get(ReadOnlySpan<int> indices)
    {
        var raw = bytes.Get(indices);
        using var pixels = raw.Inputs;
        return new Batch(pixels.to_type(ScalarType.Float32).div_(_scale).sub_(_mean).div_(_std), raw.Targets);
    }

    public override void Dispose()
    {
        bytes.Dispose();
        _scale.Dispose();
        _mean.Dispose();
        _std.Dispose();
    }
}
