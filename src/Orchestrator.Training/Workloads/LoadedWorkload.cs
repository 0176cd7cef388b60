using System.Runtime.CompilerServices;
using Orchestrator.Core.Jobs;
using Orchestrator.Sdk;
using Orchestrator.Training.Data;

namespace Orchestrator.Training.Workloads;

/// <summary>A workload that cannot be loaded or started: the message says why, in the workload's own words where it threw.</summary>
public sealed class WorkloadLoadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A job's workload, ready to train: the instance and, for a package, the collectible load context
/// that holds its code. Disposing it disposes the workload and unloads the context (the runtime frees
/// the code once nothing refers to its types any more).
/// </summary>
public sealed class LoadedWorkload : IDisposable
{
    private PackageLoadContext? _context;

    private LoadedWorkload(IWorkload workload, string description, PackageLoadContext? context)
    {
        Workload = workload;
        Description = description;
        _context = context;
        LoadContext = context is null ? null : new WeakReference(context);
    }

    public IWorkload Workload { get; }

    /// <summary>What is trained, for log lines and a run's header.</summary>
    public string Description { get; }

    /// <summary>The package's load context while it is alive (null for a built-in): a test watches it go after <see cref="Dispose"/>.</summary>
    public WeakReference? LoadContext { get; }

    /// <summary>
    /// Loads the job's workload: a built-in by name, or the package's type from <paramref name="packageFolder"/>
    /// (a folder holding the package's files; default: the job's package source, a folder or a .zip).
    /// </summary>
    /// <param name="log">Where the workload's <see cref="WorkloadContext.Log"/> lines go (default: standard error).</param>
    /// <exception cref="WorkloadArgumentException">an argument is invalid (the field is named).</exception>
    /// <exception cref="WorkloadLoadException">the package or type cannot be loaded or its constructor failed.</exception>
    public static LoadedWorkload Load(JobSpec job, string? packageFolder = null, Action<string>? log = null)
    {
        if (job.Package is not { } package)
        {
            var builtIn = new ImageClassification(job.Model, job.Dataset ?? throw new JobSpecException("dataset", "is required"));
            return new LoadedWorkload(builtIn, $"{job.Model} on {builtIn.Describe()}", null);
        }
        var folder = packageFolder ?? PackageFiles.LocalFolder(package.Source);
        var context = new PackageLoadContext(folder);
        try
        {
            var workload = Instantiate(context, package, log);
            return new LoadedWorkload(workload, $"{package.Type} from {package.Source}", context);
        }
        catch
        {
            context.Unload();
            throw;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]   // keeps the package's types out of the caller's frame, so the context can unload
    private static IWorkload Instantiate(PackageLoadContext context, WorkloadPackageSpec package, Action<string>? log)
    {
        var type = context.FindType(package.Type);
        if (!typeof(IWorkload).IsAssignableFrom(type))
            throw new WorkloadLoadException($"{package.Type} does not implement Orchestrator.Sdk.IWorkload (derive it from Workload<TModel>)");
        if (type.IsAbstract || type.IsGenericTypeDefinition)
            throw new WorkloadLoadException($"{package.Type} is abstract or generic; name a concrete workload type");
        var args = WorkloadArgs.Parse(package.ArgsJson, baseDirectory: package.BaseDirectory);
        var withContext = type.GetConstructor([typeof(WorkloadContext)]);
        var parameterless = withContext is null ? type.GetConstructor(Type.EmptyTypes) : null;
        if (withContext is null && parameterless is null)
            throw new WorkloadLoadException($"{package.Type} has no public constructor taking a WorkloadContext (or none)");
        object instance;
        try
        {
            instance = withContext is not null
                ? withContext.Invoke([new WorkloadContext(args, TensorFile.Read, log)])
                : parameterless!.Invoke([]);
        }
        catch (System.Reflection.TargetInvocationException ex) when (ex.InnerException is { } inner)
        {
            if (inner is WorkloadArgumentException) throw inner;
            throw new WorkloadLoadException($"{package.Type}: its constructor failed: {inner.GetType().Name}: {inner.Message}", inner);
        }
        var workload = (IWorkload)instance;
        try
        {
            args.RejectUnknown();
            _ = workload.Ranking ?? throw new WorkloadLoadException($"{package.Type}: Ranking is null");
        }
        catch
        {
            workload.Dispose();
            throw;
        }
        return workload;
    }

    public void Dispose()
    {
        Workload.Dispose();
        _context?.Unload();
        _context = null;
    }
}
