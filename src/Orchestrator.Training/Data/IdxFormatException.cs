namespace Orchestrator.Training.Data;

/// <summary>An IDX file that is missing, truncated or not IDX at all. The message names the file.</summary>
public sealed class IdxFormatException(string path, string problem) : Exception($"{path}: {problem}")
{
    public string Path { get; } = path;
}
