namespace Orchestrator.Cluster.Metrics;

/// <summary>
/// What this process's memory is made of, as Linux and the .NET GC count it: resident set (now and at its peak),
/// its anonymous part (the .NET heaps, libtorch's tensors and caches, thread stacks, glibc's arenas) and its
/// file-backed part (the runtime, libtorch and the assemblies, mapped from disk), and the GC's own view. Anonymous
/// memory the GC does not hold is native: libtorch's, the allocator's, the threads'.
/// </summary>
public sealed record ProcessMemory(long Rss, long RssPeak, long Anonymous, long File, long GcHeap, long GcCommitted)
{
    public long Native => Math.Max(0, Anonymous - GcCommitted);

    public static ProcessMemory Read()
    {
        var status = System.IO.File.Exists("/proc/self/status") ? System.IO.File.ReadAllText("/proc/self/status") : "";
        var info = GC.GetGCMemoryInfo();
        return FromStatus(status, info.HeapSizeBytes, info.TotalCommittedBytes);
    }

    /// <summary>From /proc/self/status's text (its kB lines; missing ones are 0).</summary>
    public static ProcessMemory FromStatus(string status, long gcHeap, long gcCommitted)
    {
        long Kb(string key)
        {
            foreach (var line in status.Split('\n'))
            {
                if (!line.StartsWith(key + ":", StringComparison.Ordinal)) continue;
                var parts = line[(key.Length + 1)..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                return parts.Length > 0 && long.TryParse(parts[0], out var kb) ? kb * 1024 : 0;
            }
            return 0;
        }
        return new ProcessMemory(Kb("VmRSS"), Kb("VmHWM"), Kb("RssAnon"), Kb("RssFile") + Kb("RssShmem"), gcHeap, gcCommitted);
    }

    /// <summary>One line for a log: the parts in MiB.</summary>
    public string Describe() =>
        $"RSS {Mib(Rss)} MiB (peak {Mib(RssPeak)}): mapped files {Mib(File)}, anonymous {Mib(Anonymous)} " +
        $"(.NET GC {Mib(GcCommitted)} committed, {Mib(GcHeap)} in use; native {Mib(Native)})";

    private static long Mib(long bytes) => bytes >> 20;
}
