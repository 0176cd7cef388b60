using Orchestrator.Core.Jobs;

namespace Orchestrator.Training.Data;

/// <summary>The four IDX files of a dataset, found on disk.</summary>
public sealed record DatasetFiles(string Name, string Folder, string TrainImages, string TrainLabels, string TestImages, string TestLabels);

/// <summary>
/// Finds a dataset's IDX files: at <c>dataset.path</c> when given, else in $ORCHESTRATOR_DATA/&lt;name&gt;,
/// the Debian package's folder (/usr/share/datasets/&lt;name&gt;), and ~/.orchestrator/data/&lt;name&gt;
/// (where scripts/fetch-data.sh downloads to when apt is not available).
/// </summary>
public static class DatasetLocator
{
    public static readonly string[] FileStems =
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    public static IReadOnlyList<string> SearchFolders(DatasetSpec spec)
    {
        if (spec.Path is not null) return [Path.GetFullPath(spec.Path)];
        var folders = new List<string>();
        var env = Environment.GetEnvironmentVariable("ORCHESTRATOR_DATA");
        if (!string.IsNullOrEmpty(env)) folders.Add(Path.Combine(env, spec.Name));
        folders.Add(Path.Combine("/usr/share/datasets", spec.Name));
        folders.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".orchestrator", "data", spec.Name));
        return folders;
    }

    /// <exception cref="JobSpecException">naming dataset.path or dataset.name, with every place looked in.</exception>
    public static DatasetFiles Locate(DatasetSpec spec)
    {
        var folders = SearchFolders(spec);
        string? firstMissing = null;
        foreach (var folder in folders)
        {
            var found = FileStems.Select(stem => Find(folder, stem)).ToArray();
            if (found.All(f => f is not null))
                return new DatasetFiles(spec.Name, folder, found[0]!, found[1]!, found[2]!, found[3]!);
            if (found.Any(f => f is not null) && firstMissing is null)
                firstMissing = $"{folder} has only some of the files (missing {string.Join(", ", FileStems.Where((_, i) => found[i] is null).Select(s => s + "[.gz]"))})";
        }
        var field = spec.Path is null ? "dataset.name" : "dataset.path";
        var looked = string.Join(", ", folders);
        var detail = firstMissing ?? $"{FileStems[0]}[.gz] and the other three IDX files not found";
        var hint = spec.Path is null ? "; run scripts/fetch-data.sh or set dataset.path" : "";
        throw new JobSpecException(field, $"dataset '{spec.Name}': {detail}; looked in: {looked}{hint}");
    }

    private static string? Find(string folder, string stem)
    {
        foreach (var candidate in new[] { stem + ".gz", stem })
        {
            var path = Path.Combine(folder, candidate);
            if (File.Exists(path)) return path;
        }
        return null;
    }
}
