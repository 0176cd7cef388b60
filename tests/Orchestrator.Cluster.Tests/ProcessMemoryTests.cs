using Orchestrator.Cluster.Metrics;

namespace Orchestrator.Cluster.Tests;

public class ProcessMemoryTests
{
    [Fact]
    public void Reads_proc_status_kilobyte_lines_and_counts_native_memory_as_anonymous_beyond_the_gc()
    {
        const string status = "Name:\tdotnet\nVmHWM:\t  712000 kB\nVmRSS:\t  450000 kB\nRssAnon:\t  300000 kB\nRssFile:\t  149000 kB\nRssShmem:\t    1000 kB\n";
        var m = ProcessMemory.FromStatus(status, gcHeap: 100L << 20, gcCommitted: 150L << 20);
        Assert.Equal((450_000L * 1024, 712_000L * 1024, 300_000L * 1024, 150_000L * 1024), (m.Rss, m.RssPeak, m.Anonymous, m.File));
        Assert.Equal(300_000L * 1024 - (150L << 20), m.Native);
        Assert.Contains("RSS 439 MiB (peak 695)", m.Describe());
        Assert.Equal(0, ProcessMemory.FromStatus("", 0, 10).Native);   // no /proc: nothing made up
    }

    [Fact]
    public void This_process_has_a_resident_set_on_linux()
    {
        Assert.True(OperatingSystem.IsLinux(), "the product runs on Linux: /proc/self/status is where RSS is read");
        var m = ProcessMemory.Read();
        Assert.True(m.Rss > 0 && m.RssPeak >= m.Rss && m.Anonymous > 0 && m.File > 0, m.Describe());
    }
}
