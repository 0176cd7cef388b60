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
        // A named dataset has a known number of classes: a label outside it is a damaged file, not a new class.
        int classes = KnownClasses.TryGetValue(files.Name, out var known) ? known : Math.Max(train.MaxLabel, test.MaxLabel) + 1;
        CheckLabels(train, files.TrainLabels, classes);
        CheckLabels(test, files.TestLabels, classes);
        var (mean, std) = PixelStatistics(train.Pixels);
        return new ImageDataset(files.Name, train, test, classes, mean, std);
    }

    private static readonly Dictionary<string, int> KnownClasses = new(StringComparer.Ordinal) { ["fashion-mnist"] = 10, ["mnist"] = 10 };

    private static void CheckLabels(ImageSplit split, string path, int classes)
    {
        for (int i = 0; i < split.Labels.Length; i++)
            if (split.Labels[i] >= classes)
                throw new IdxFormatException(path, $"label {split.Labels[i]} at position {i} is outside the dataset's {classes} classes (0-{classes - 1})");
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
