using System.Reflection;
using System.Runtime.Loader;
using Orchestrator.Sdk;

namespace Orchestrator.Training.Workloads;

/// <summary>
/// A collectible load context for one job's package. The SDK, TorchSharp and the runtime come from the
/// host (the default context), so modules and tensors cross the boundary and libtorch is loaded once;
/// everything else the package needs comes from its own folder. Assemblies are read into memory, so
/// the files stay free to be removed while the job runs.
/// </summary>
internal sealed class PackageLoadContext(string folder) : AssemblyLoadContext($"workload:{folder}", isCollectible: true)
{
    /// <summary>Assemblies a package never brings its own copy of (the host's are the contract).</summary>
    internal static bool IsShared(string name) =>
        name is "Orchestrator.Sdk" or "TorchSharp" or "netstandard" or "mscorlib"
        || name.StartsWith("System.", StringComparison.Ordinal) || name.StartsWith("Microsoft.", StringComparison.Ordinal)
        || Default.Assemblies.Any(a => a.GetName().Name == name);

    protected override Assembly? Load(AssemblyName name)
    {
        if (name.Name is null || IsShared(name.Name)) return null;
        var path = Path.Combine(folder, name.Name + ".dll");
        return File.Exists(path) ? LoadBytes(path) : null;
    }

    private Assembly LoadBytes(string path)
    {
        using var stream = new MemoryStream(File.ReadAllBytes(path));
        return LoadFromStream(stream);
    }

    /// <summary>Finds <paramref name="typeName"/> in the package's assemblies and checks the SDK version it was built against.</summary>
    public Type FindType(string typeName)
    {
        var candidates = Directory.Exists(folder)
            ? Directory.GetFiles(folder, "*.dll").Where(f => !IsShared(Path.GetFileNameWithoutExtension(f))).Order(StringComparer.Ordinal).ToList()
            : throw new WorkloadLoadException($"package folder {folder} does not exist");
        if (candidates.Count == 0) throw new WorkloadLoadException($"the package in {folder} holds no assembly (.dll) of its own");
        foreach (var file in candidates)
        {
            Assembly assembly;
            try { assembly = LoadFromAssemblyName(new AssemblyName(Path.GetFileNameWithoutExtension(file))); }
            catch (BadImageFormatException) { continue; }   // a native library beside the assemblies
            var type = assembly.GetType(typeName, throwOnError: false);
            if (type is null) continue;
            CheckSdkVersion(assembly);
            return type;
        }
        throw new WorkloadLoadException($"no type {typeName} in the package's assemblies ({string.Join(", ", candidates.Select(Path.GetFileName))})");
    }

    private static void CheckSdkVersion(Assembly assembly)
    {
        var sdk = assembly.GetReferencedAssemblies().FirstOrDefault(a => a.Name == "Orchestrator.Sdk")
            ?? throw new WorkloadLoadException($"{assembly.GetName().Name} does not reference Orchestrator.Sdk, so it holds no workload");
        if (sdk.Version?.Major != SdkVersion.Major)
            throw new WorkloadLoadException($"{assembly.GetName().Name} was built against Orchestrator.Sdk {sdk.Version}, this host has SDK {SdkVersion.Current} (major versions must match: rebuild the package against SDK {SdkVersion.Major}.x)");
    }
}
