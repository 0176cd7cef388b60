using Orchestrator.Training.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Training.Engine;

/// <summary>
/// A split moved to a device once, normalized with the train split's statistics: images [N,1,H,W]
/// float32, labels [N] int64. Batches are gathered from it by index on the device.
/// </summary>
public sealed class DeviceData : IDisposable
{
    public Tensor Images { get; }
    public Tensor Labels { get; }
    public int Count { get; }

    public DeviceData(ImageSplit split, float mean, float std, Device device)
    {
        Count = split.Count;
        using var scope = NewDisposeScope();
        var raw = tensor(split.Pixels, new long[] { split.Count, 1, split.Rows, split.Columns });
        // Explicit Scalars that live to the end: an implicit one can be finalized while libtorch reads it (ScalarSafeSgd).
        using var scale = 255f.ToScalar();
        using var meanScalar = mean.ToScalar();
        using var stdScalar = std.ToScalar();
        var images = raw.to_type(ScalarType.Float32).div_(scale).sub_(meanScalar).div_(stdScalar).to(device);
        var labels = tensor(split.Labels, new long[] { split.Count }).to_type(ScalarType.Int64).to(device);
        Images = images.DetachFromDisposeScope();
        Labels = labels.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}
