namespace Orchestrator.Training.Engine;

/// <summary>
/// Reports on the calling thread. <see cref="Progress{T}"/> posts to the thread pool, which reorders
/// reports and lets them outlive the run.
/// </summary>
public sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
