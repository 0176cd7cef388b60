using System.Buffers.Binary;
using System.IO.Compression;
using Orchestrator.Training.Data;

namespace Orchestrator.Training.Tests;

public sealed class IdxFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("idx-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>An IDX file of unsigned bytes with the given dimensions, data = 0, 1, 2, …</summary>
    internal static byte[] Idx(params int[] dims)
    {
        long count = dims.Aggregate(1L, (a, d) => a * d);
        var bytes = new byte[4 + 4 * dims.Length + count];
        bytes[2] = 0x08;
        bytes[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        for (long i = 0; i < count; i++) bytes[4 + 4 * dims.Length + i] = (byte)(i % 251);
        return bytes;
    }

    private string Write(string name, byte[] bytes, bool gzip = false)
    {
        var path = Path.Combine(_folder, name);
        if (!gzip) File.WriteAllBytes(path, bytes);
        else
        {
            using var file = File.Create(path);
            using var zip = new GZipStream(file, CompressionLevel.Fastest);
            zip.Write(bytes);
        }
        return path;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_a_good_file_plain_or_gzipped(bool gzip)
    {
        var path = Write("images", Idx(3, 4, 5), gzip);
        var array = IdxFile.Read(path, 3);
        Assert.Equal([3, 4, 5], array.Dimensions);
        Assert.Equal(60, array.Data.Length);
        Assert.Equal(59, array.Data[59]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_file_one_byte_short_is_truncated_not_a_smaller_dataset(bool gzip)
    {
        var bytes = Idx(10, 2, 2);
        var path = Write("images", bytes[..^1], gzip);
        var ex = Assert.Throws<IdxFormatException>(() => IdxFile.Read(path, 3));
        Assert.Contains(path, ex.Message);
        Assert.Contains("truncated: header says 10x2x2 = 40 bytes of data, file has 39", ex.Message);
    }

    [Fact]
    public void A_named_datasets_label_outside_its_classes_is_refused_with_the_file_and_position()
    {
        // Fashion-MNIST has 10 classes: a test label of 200 is a damaged file, not a 201st class.
        var labels = Idx(5);
        labels[labels.Length - 5 + 3] = 200;
        var files = new DatasetFiles("fashion-mnist", _folder, Write("train-images", Idx(5, 28, 28)), Write("train-labels", Idx(5)),
            Write("t10k-images", Idx(5, 28, 28)), Write("t10k-labels", labels));
        var ex = Assert.Throws<IdxFormatException>(() => ImageDataset.Load(files));
        Assert.Equal(files.TestLabels, ex.Path);
        Assert.Contains("label 200 at position 3 is outside the dataset's 10 classes (0-9)", ex.Message);
        // The same files as a plain `idx` pair: the classes are what the labels say.
        Assert.Equal(201, ImageDataset.Load(files with { Name = "idx" }).Classes);
    }

    [Fact]
    public void A_gzip_bomb_is_refused_after_what_its_header_describes_and_never_held_whole()
    {
        // A header for 10 images of 28x28, then a gigabyte of zeros: about a megabyte on disk.
        var path = Path.Combine(_folder, "bomb.gz");
        using (var file = File.Create(path))
        using (var zip = new GZipStream(file, CompressionLevel.Optimal))
        {
            zip.Write(Idx(10, 28, 28));
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 1024; i++) zip.Write(zeros);
        }
        Assert.True(new FileInfo(path).Length < 2 << 20, "the bomb is small on disk");
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<IdxFormatException>(() => IdxFile.Read(path, 3));
        Assert.Contains("decompresses to more than the 7856 bytes its header describes", ex.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the reader held far more than the header describes");
    }

    [Fact]
    public void A_gzip_stream_cut_short_is_rejected()
    {
        var path = Write("images.gz", Idx(100, 28, 28), gzip: true);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var ex = Assert.Throws<IdxFormatException>(() => IdxFile.Read(path, 3));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void Trailing_bytes_are_rejected()
    {
        var path = Write("labels", [.. Idx(5), 7]);
        Assert.Contains("1 unexpected bytes", Assert.Throws<IdxFormatException>(() => IdxFile.Read(path, 1)).Message);
    }

    [Fact]
    public void Wrong_magic_is_rejected()
    {
        var bytes = Idx(5);
        bytes[0] = 0x1f; bytes[1] = 0x00;   // not gzip either
        var path = Write("labels", bytes);
        Assert.Contains("not an IDX file: magic number 0x1f000801", Assert.Throws<IdxFormatException>(() => IdxFile.Read(path, 1)).Message);
    }

    [Fact]
    public void Wrong_element_type_and_dimension_count_are_rejected()
    {
        var floats = Idx(5);
        floats[2] = 0x0D;
        Assert.Contains("element type 0x0d", Assert.Throws<IdxFormatException>(() => IdxFile.Read(Write("f", floats), 1)).Message);
        Assert.Contains("has 1 dimensions, expected 3", Assert.Throws<IdxFormatException>(() => IdxFile.Read(Write("l", Idx(5)), 3)).Message);
    }

    [Fact]
    public void A_missing_file_names_its_path()
    {
        var path = Path.Combine(_folder, "nope");
        Assert.Equal($"{path}: file not found", Assert.Throws<IdxFormatException>(() => IdxFile.Read(path, 1)).Message);
    }

    [Fact]
    public void Images_and_labels_must_agree_in_count()
    {
        var images = Write("images", Idx(4, 2, 2));
        var labels = Write("labels", Idx(3));
        Assert.Contains("has 3 labels but", Assert.Throws<IdxFormatException>(() => ImageSplit.Load(images, labels)).Message);
    }

    [Fact]
    public void Real_fashion_mnist_loads_with_its_known_shape()
    {
        var data = ImageDataset.Load(DatasetLocator.Locate(new Core.Jobs.DatasetSpec("fashion-mnist", null)));
        Assert.Equal((60000, 10000, 28, 28, 10), (data.Train.Count, data.Test.Count, data.Train.Rows, data.Train.Columns, data.Classes));
        Assert.InRange(data.Mean, 0.28f, 0.29f);   // Fashion-MNIST's well-known pixel mean 0.2860
        Assert.InRange(data.Std, 0.35f, 0.36f);    // and standard deviation 0.3530
    }
}
