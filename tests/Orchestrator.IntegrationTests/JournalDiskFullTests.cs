using System.Diagnostics;

namespace Orchestrator.IntegrationTests;

/// <summary>
/// The coordinator's data folder (journal, checkpoints) on a 48 MiB tmpfs that the test fills: a submit is
/// refused with the reason and nothing is recorded, the API keeps answering reads, the process stays up, and
/// once space is freed the job manager is back by itself and a new job runs to Completed. Skipped, with the
/// reason, where this process may not mount a tmpfs.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class JournalDiskFullTests : IDisposable
{
    private string? _mount;
    private LocalCluster? _cluster;

    [SkippableFact]
    public void A_full_disk_refuses_submits_with_the_reason_and_the_job_manager_comes_back_by_itself_when_space_is_freed()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "tmpfs mounts are Linux's");
        var probe = Directory.CreateTempSubdirectory("orch-mount-probe-").FullName;
        var canMount = Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe);
        if (canMount.ExitCode == 0) Run("umount", probe);
        Directory.Delete(probe);
        Skip.If(canMount.ExitCode != 0, $"cannot mount a tmpfs here: {canMount.Stderr.Trim()}");

        _cluster = LocalCluster.Up(dir =>
        {
            _mount = Path.Combine(dir, "data", "coordinator");
            Directory.CreateDirectory(_mount);
            var mounted = Run("mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", _mount);
            Assert.True(mounted.ExitCode == 0, mounted.ToString());
        }, workers: 1);
        var first = _cluster.Submit(Jobs.Mlp("disk-first", maxSteps: 60));
        Assert.Equal("Completed", _cluster.WaitFor(first, s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(120))
            .GetProperty("state").GetString());

        // Fill what is left of the coordinator's disk.
        var fill = Path.Combine(_mount!, "fill");
        using (var file = new FileStream(fill, FileMode.CreateNew))
        {
            var block = new byte[1 << 20];
            try { while (true) file.Write(block); }
            catch (IOException) { }   // No space left on device
        }
        var refused = _cluster.Client("submit", Jobs.Mlp("disk-refused", maxSteps: 10));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("the job manager is down: the journal could not record JobSubmitted", refused.Stderr);
        Assert.Contains("disk is full", refused.Stderr);
        Assert.Equal([first], _cluster.Json("list").EnumerateArray().Select(j => j.GetProperty("id").GetString()));   // reads still answered
        Assert.True(_cluster.IsRunning("coordinator"), "the coordinator exited on a full disk");

        // Space is back: within the guard's backoff a submit is accepted again, and the job runs.
        File.Delete(fill);
        var clock = Stopwatch.StartNew();
        string? next = null;
        while (next is null && clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            var submit = _cluster.Client("submit", Jobs.Mlp("disk-after", maxSteps: 60));
            if (submit.ExitCode == 0) next = submit.Stdout.Trim();
            else Thread.Sleep(1000);
        }
        Assert.True(next is not null, "no submit was accepted within 60 s of freeing space");
        Console.WriteLine($"disk full: a submit was accepted {clock.Elapsed.TotalSeconds:F1} s after space was freed");
        Assert.Equal("Completed", _cluster.WaitFor(next!, s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(120))
            .GetProperty("state").GetString());
        var names = _cluster.Json("list").EnumerateArray().Select(j => j.GetProperty("name").GetString()).ToList();
        Assert.Equal(["disk-first", "disk-after"], names);   // the refused submit left nothing behind
    }

    private static ProcessResult Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit(30_000);
            return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception ex) { return new ProcessResult(127, "", $"{file}: {ex.Message}"); }
    }

    public void Dispose()
    {
        if (_cluster is null) return;
        LocalCluster.Script(TimeSpan.FromSeconds(60), "local-cluster.sh", "down", "--dir", _cluster.Dir);
        if (_mount is not null) Run("umount", _mount);
        _cluster.Dispose();
    }
}
