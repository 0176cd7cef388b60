using Orchestrator.Core.Jobs;
using Orchestrator.Training.Data;

namespace Orchestrator.Training.Tests;

public sealed class DatasetLocatorTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("data-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void An_explicit_path_without_the_files_names_dataset_path_and_the_folder()
    {
        var ex = Assert.Throws<JobSpecException>(() => DatasetLocator.Locate(new DatasetSpec("idx", _folder)));
        Assert.Equal("dataset.path", ex.Field);
        Assert.Contains(_folder, ex.Message);
        Assert.Contains("train-images-idx3-ubyte", ex.Message);
    }

    [Fact]
    public void A_folder_with_some_files_says_which_are_missing()
    {
        foreach (var stem in DatasetLocator.FileStems.Take(3)) File.WriteAllBytes(Path.Combine(_folder, stem + ".gz"), [0]);
        var ex = Assert.Throws<JobSpecException>(() => DatasetLocator.Locate(new DatasetSpec("idx", _folder)));
        Assert.Contains("missing t10k-labels-idx1-ubyte[.gz]", ex.Message);
    }

    [Fact]
    public void Finds_plain_and_gzipped_files_in_an_explicit_folder()
    {
        File.WriteAllBytes(Path.Combine(_folder, "train-images-idx3-ubyte"), [0]);
        foreach (var stem in DatasetLocator.FileStems.Skip(1)) File.WriteAllBytes(Path.Combine(_folder, stem + ".gz"), [0]);
        var files = DatasetLocator.Locate(new DatasetSpec("idx", _folder));
        Assert.Equal(Path.Combine(_folder, "train-images-idx3-ubyte"), files.TrainImages);
        Assert.Equal(Path.Combine(_folder, "t10k-labels-idx1-ubyte.gz"), files.TestLabels);
    }

    [Fact]
    public void A_named_dataset_is_searched_in_ORCHESTRATOR_DATA_first()
    {
        var spec = new DatasetSpec("fashion-mnist", null);
        var before = Environment.GetEnvironmentVariable("ORCHESTRATOR_DATA");
        try
        {
            Environment.SetEnvironmentVariable("ORCHESTRATOR_DATA", _folder);
            var folders = DatasetLocator.SearchFolders(spec);
            Assert.Equal(Path.Combine(_folder, "fashion-mnist"), folders[0]);
            Assert.Contains("/usr/share/datasets/fashion-mnist", folders);
        }
        finally { Environment.SetEnvironmentVariable("ORCHESTRATOR_DATA", before); }
    }
}
