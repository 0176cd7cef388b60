namespace Orchestrator.Core.Jobs;

/// <summary>A job file that cannot be accepted. <see cref="Field"/> is the dotted path of the offending field.</summary>
public sealed class JobSpecException(string field, string problem)
    : Exception(field.Length == 0 ? problem : $"{field}: {problem}")
{
    public string Field { get; } = field;
    public string Problem { get; } = problem;
}
