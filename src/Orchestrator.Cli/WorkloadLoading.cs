using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Data;
using Orchestrator.Training.Workloads;

namespace Orchestrator.Cli;

/// <summary>
/// Loads a job's workload in the client (for <c>run</c>, and to check a job before <c>submit</c>): its
/// data found, its package loaded and its arguments validated, so that a bad job is refused here with
/// the field named (exit 2) instead of failing on the workers.
/// </summary>
public static class WorkloadLoading
{
    /// <summary>
    /// Checks a job before it is submitted: a built-in's dataset is found; a package's workload is loaded
    /// (its arguments validated by its constructor) and unloaded again.
    /// </summary>
    public static void Check(JobSpec spec)
    {
        if (spec.IsBuiltIn)
        {
            if (spec.Dataset is { Name: "tensors", Path: { } path } && !File.Exists(path))
                throw new JobSpecException("dataset.path", $"no such file: {Path.GetFullPath(path)}");
            if (spec.Dataset is { Name: not "tensors" } dataset) DatasetLocator.Locate(dataset);
            return;
        }
        // A package named by its hash is already on the coordinator; the workers check it as they load it.
        if (spec.Package!.Source.StartsWith(JobSpecParser.PackageHashPrefix, StringComparison.Ordinal)) return;
        using var loaded = Load(spec);
    }

    public static LoadedWorkload Load(JobSpec spec)
    {
        if (spec.Dataset is { Name: not "tensors" } dataset) DatasetLocator.Locate(dataset);   // names every folder looked in
        try { return LoadedWorkload.Load(spec); }
        catch (WorkloadArgumentException ex) { throw new JobSpecException(ex.Field, ex.Problem); }
        catch (WorkloadLoadException ex) { throw new UsageException($"cannot load the workload: {ex.Message}"); }
    }
}
