namespace Orchestrator.Training.Data;

/// <summary>One split (train or held-out) of an image classification dataset, as raw bytes.</summary>
public sealed record ImageSplit(byte[] Pixels, byte[] Labels, int Count, int Rows, int Columns)
{
    public int PixelsPerImage => Rows * Columns;

    public static ImageSplit Load(string imagesPath, string labelsPath)
    {
        var images = IdxFile.Read(imagesPath, 3);
        var labels = IdxFile.Read(labelsPath, 1);
        if (images.Count != labels.Count)
            throw new IdxFormatException(labelsPath, $"has {labels.Count} labels but {imagesPath} has {images.Count} images");
        return new ImageSplit(images.Data, labels.Data, images.Count, images.Dimensions[1], images.Dimensions[2]);
    }

    public int MaxLabel => Labels.Length == 0 ? 0 : Labels.Max();
}

/// <summary>A dataset's train and held-out splits with the normalization computed from the train split.</summary>
public sealed record ImageDataset(string Name, ImageSplit Train, ImageSplit Test, int Classes, float Mean, float Std)
{
    public static ImageDataset Load(DatasetFiles files)
    {
        var train = ImageSplit.Load(files.TrainImages, files.TrainLabels);
        var test = ImageSplit.Load(files.TestImages, files.TestLabels);
        if (train.Rows != test.Rows || train.Columns != test.Columns)
            throw new IdxFormatException(files.TestImages,
                $"images are {test.Rows}x{test.Columns} but the training images are {train.Rows}x{train.Columns}");
        int classes = Math.Max(train.MaxLabel, test.MaxLabel) + 1;
        var (mean, std) = PixelStatistics(train.Pixels);
        return new ImageDataset(files.Name, train, test, classes, mean, std);
    }

    /// <summary>Mean and standard deviation of pixel/255 over the training split (exact, in double).</summary>
    private static (float Mean, float Std) PixelStatistics(byte[] pixels)
    {
        Span<long> histogram = stackalloc long[256];
        foreach (var p in pixels) histogram[p]++;
        double n = pixels.Length, sum = 0, sumSq = 0;
        for (int v = 0; v < 256; v++)
        {
            double x = v / 255.0;
            sum += histogram[v] * x;
            sumSq += histogram[v] * x * x;
        }
        double mean = sum / n, variance = Math.Max(sumSq / n - mean * mean, 1e-12);
        return ((float)mean, (float)Math.Sqrt(variance));
    }
}
