using System.Diagnostics;

namespace Orchestrator.Cli.Tests;

public sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the built `orchestrator` executable as its own process, as scripts and users do.</summary>
internal static class Cli
{
    private static readonly string Dll = Path.Combine(AppContext.BaseDirectory, "orchestrator.dll");

    public static CliResult Run(TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["MALLOC_MMAP_THRESHOLD_"] = "33554432";
        start.Environment["MALLOC_TRIM_THRESHOLD_"] = "1073741824";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"orchestrator {string.Join(' ', args)} still running after {timeout}");
        }
        process.WaitForExit();
        return new CliResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    public static CliResult Run(params string[] args) => Run(TimeSpan.FromSeconds(60), args);
}
