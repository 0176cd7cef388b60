using Orchestrator.Core.Jobs;
using Orchestrator.Training.Data;

namespace Orchestrator.Training.Tests;

/// <summary>
/// The real Fashion-MNIST, found where the product finds it (the Debian package dataset-fashion-mnist,
/// which .ci/run installs). A machine without it fails these tests with the locator's message.
/// </summary>
internal static class TestData
{
    public static readonly Lazy<ImageDataset> FashionMnist =
        new(() => ImageDataset.Load(DatasetLocator.Locate(new DatasetSpec("fashion-mnist", null))));
}
