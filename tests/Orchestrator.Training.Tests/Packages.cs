namespace Orchestrator.TestSupport;

/// <summary>Build outputs of the examples and fixtures (the solution builds them with the tests, in the same configuration).</summary>
internal static class Packages
{
    public static readonly string Root = FindRoot();

    private static readonly string Configuration =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";

    public static string Example(string name) => Output(Path.Combine(Root, "examples", name));

    public static string Fixture(string name) => Output(Path.Combine(Root, "tests", "Fixtures", name));

    private static string Output(string project)
    {
        var folder = Path.Combine(project, "bin", Configuration, "net10.0");
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder} is missing: build the solution first (scripts/test.sh does)");
        return folder;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Orchestrator.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("no Orchestrator.sln above " + AppContext.BaseDirectory);
    }
}
