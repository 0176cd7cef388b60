using Akka.Configuration;

namespace Orchestrator.Core.Settings;

/// <summary>The <c>orchestrator</c> section of the configuration, read once and validated; errors name the HOCON path.</summary>
public sealed record OrchestratorSettings(string DataDir, ApiSettings Api, CoordinatorSettings Coordinator, WorkerSettings Worker,
    CheckpointSettings Checkpoint, MembershipSettings Membership, PackageSettings Packages, MetricsSettings Metrics)
{
    /// <summary>The shipped defaults (embedded <c>reference.conf</c>).</summary>
    public static Config DefaultConfig() =>
        ConfigurationFactory.FromResource<OrchestratorSettings>("Orchestrator.Core.reference.conf");

    public static OrchestratorSettings Create(Config root)
    {
        var c = root.GetConfig("orchestrator");
        if (c.IsNullOrEmpty()) throw ConfigurationException.NullOrEmptyConfig<OrchestratorSettings>("orchestrator");
        var dataDir = c.GetString("data-dir", "");
        if (string.IsNullOrWhiteSpace(dataDir)) throw new ConfigurationException("orchestrator.data-dir must not be empty");
        return new OrchestratorSettings(dataDir, ApiSettings.Create(c.GetConfig("api")), CoordinatorSettings.Create(c.GetConfig("coordinator")),
            WorkerSettings.Create(c.GetConfig("worker")), CheckpointSettings.Create(c.GetConfig("checkpoint"), dataDir),
            MembershipSettings.Create(c.GetConfig("membership")), PackageSettings.Create(c.GetConfig("packages"), dataDir),
            MetricsSettings.Create(c.GetConfig("metrics")));
    }

    internal static TimeSpan Positive(Config c, string path, string section)
    {
        var value = Parsed(c, path, section, "a positive duration", () => c.GetTimeSpan(path, TimeSpan.Zero));
        if (value <= TimeSpan.Zero) throw new ConfigurationException($"orchestrator.{section}.{path} must be a positive duration, was {c.GetString(path, "(missing)")}");
        return value;
    }

    internal static int Int(Config c, string path, string section, int fallback) =>
        Parsed(c, path, section, "a whole number", () => c.GetInt(path, fallback));

    /// <summary>HOCON's typed reads throw FormatException on text like 'soon'; this names the setting instead.</summary>
    private static T Parsed<T>(Config c, string path, string section, string expected, Func<T> read)
    {
        try { return read(); }
        catch (Exception ex) when (ex is FormatException or OverflowException)
        {
            throw new ConfigurationException($"orchestrator.{section}.{path} must be {expected}, was {c.GetString(path, "(missing)")}");
        }
    }
}

/// <summary>
/// Where a node serves its Prometheus metrics on a port of its own (<c>http://Hostname:Port/metrics</c>, without a token, so
/// loopback by default); <paramref name="Port"/> 0: on no port of its own (a coordinator serves them on its job API as well,
/// behind the token).
/// </summary>
public sealed record MetricsSettings(string Hostname, int Port)
{
    public static MetricsSettings Create(Config c)
    {
        if (c.IsNullOrEmpty()) return new("127.0.0.1", 0);
        var port = OrchestratorSettings.Int(c, "port", "metrics", -1);
        if (port is < 0 or > 65535) throw new ConfigurationException($"orchestrator.metrics.port must be in [0, 65535], was {c.GetString("port", "(missing)")}");
        var hostname = c.GetString("hostname", "");
        // Kestrel binds every interface for a host name it cannot take as an address: this port has no token.
        if (hostname != "localhost" && !System.Net.IPAddress.TryParse(hostname, out _))
            throw new ConfigurationException($"orchestrator.metrics.hostname must be an IP address (or localhost) to listen on, was '{hostname}'");
        return new(hostname, port);
    }
}

public sealed record ApiSettings(string Hostname, int Port, string Token, TimeSpan AskTimeout)
{
    public static ApiSettings Create(Config c)
    {
        var port = OrchestratorSettings.Int(c, "port", "api", -1);
        if (port is < 0 or > 65535) throw new ConfigurationException($"orchestrator.api.port must be in [0, 65535], was {c.GetString("port", "(missing)")}");
        var hostname = c.GetString("hostname", "");
        if (string.IsNullOrWhiteSpace(hostname)) throw new ConfigurationException("orchestrator.api.hostname must not be empty");
        var token = c.GetString("token", "");
        if (token.Length is > 0 and < 16) throw new ConfigurationException("orchestrator.api.token must be empty (generated) or at least 16 characters");
        return new ApiSettings(hostname, port, token, OrchestratorSettings.Positive(c, "ask-timeout", "api"));
    }
}

/// <param name="MaxQueuedJobs">Jobs waiting (queued or recovering) beyond which a submit is refused (429), so the queue cannot grow without bound.</param>
public sealed record CoordinatorSettings(TimeSpan InventoryRetry, TimeSpan StopTimeout, int MaxQueuedJobs = 1000, int SnapshotEvery = 1000)
{
    public static CoordinatorSettings Create(Config c)
    {
        var max = OrchestratorSettings.Int(c, "max-queued-jobs", "coordinator", 0);
        if (max is < 1 or > 1_000_000)
            throw new ConfigurationException($"orchestrator.coordinator.max-queued-jobs must be in [1, 1000000], was {c.GetString("max-queued-jobs", "(missing)")}");
        var every = OrchestratorSettings.Int(c, "snapshot-every", "coordinator", 0);
        if (every is < 10 or > 1_000_000)
            throw new ConfigurationException($"orchestrator.coordinator.snapshot-every must be in [10, 1000000], was {c.GetString("snapshot-every", "(missing)")}");
        return new(OrchestratorSettings.Positive(c, "inventory-retry", "coordinator"), OrchestratorSettings.Positive(c, "stop-timeout", "coordinator"), max, every);
    }
}

/// <param name="StepTrace">Whether the engine has its step-trace hooks at all (<c>orchestrator trace</c>); off, a trace request gets no spans.</param>
public sealed record WorkerSettings(string Device, int CpuDevices, int Threads, TimeSpan ProgressInterval, TimeSpan CollectiveDeadline, TimeSpan RingConnectTimeout,
    bool StepTrace = true)
{
    public static WorkerSettings Create(Config c)
    {
        var device = c.GetString("device", "auto");
        if (device is not ("auto" or "cpu" or "cuda"))
            throw new ConfigurationException($"orchestrator.worker.device must be auto, cpu or cuda, was '{device}'");
        var cpuDevices = OrchestratorSettings.Int(c, "cpu-devices", "worker", 0);
        if (cpuDevices is < 1 or > 64) throw new ConfigurationException($"orchestrator.worker.cpu-devices must be in [1, 64], was {c.GetString("cpu-devices", "(missing)")}");
        var threads = OrchestratorSettings.Int(c, "threads", "worker", -1);
        if (threads < 0) throw new ConfigurationException($"orchestrator.worker.threads must be 0 (all cores) or more, was {c.GetString("threads", "(missing)")}");
        return new WorkerSettings(device, cpuDevices, threads, OrchestratorSettings.Positive(c, "progress-interval", "worker"),
            OrchestratorSettings.Positive(c, "collective-deadline", "worker"), OrchestratorSettings.Positive(c, "ring-connect-timeout", "worker"),
            c.GetString("step-trace", "on") switch
            {
                "on" or "true" or "yes" => true,
                "off" or "false" or "no" => false,
                var other => throw new ConfigurationException($"orchestrator.worker.step-trace must be on or off, was '{other}'"),
            });
    }
}

/// <summary>The checkpoint actor's settings: where checkpoints live (default: the data folder's <c>checkpoints</c>) and the threads evaluation may use.</summary>
/// <remarks>An offered snapshot larger than <paramref name="MaxSnapshotBytes"/>, or beyond <paramref name="MaxPendingOffers"/> on their way at once, is refused before anything is allocated for it.</remarks>
public sealed record CheckpointSettings(string Dir, int EvalThreads, long MaxSnapshotBytes = 256L << 20, int MaxPendingOffers = 4)
{
    public static CheckpointSettings Create(Config c, string dataDir)
    {
        var dir = c.GetString("dir", "");
        var threads = OrchestratorSettings.Int(c, "eval-threads", "checkpoint", 0);
        if (threads < 1) throw new ConfigurationException($"orchestrator.checkpoint.eval-threads must be at least 1, was {c.GetString("eval-threads", "(missing)")}");
        long maxBytes;
        try { maxBytes = c.GetByteSize("max-snapshot-bytes") ?? 0; }
        catch (Exception ex) when (ex is FormatException or OverflowException) { maxBytes = 0; }
        if (maxBytes is < 1024 or > int.MaxValue)
            throw new ConfigurationException($"orchestrator.checkpoint.max-snapshot-bytes must be a size between 1 KiB and 2 GiB, was {c.GetString("max-snapshot-bytes", "(missing)")}");
        var pending = OrchestratorSettings.Int(c, "max-pending-offers", "checkpoint", 0);
        if (pending is < 1 or > 1024)
            throw new ConfigurationException($"orchestrator.checkpoint.max-pending-offers must be in [1, 1024], was {c.GetString("max-pending-offers", "(missing)")}");
        return new CheckpointSettings(string.IsNullOrWhiteSpace(dir) ? Path.Combine(dataDir, "checkpoints") : dir, threads, maxBytes, pending);
    }
}

/// <summary>
/// Workload packages: where the coordinator keeps them and nodes cache them (under the data folder), the
/// largest one accepted (an upload or a fetch over it is refused), and how long an unreferenced one is kept.
/// </summary>
public sealed record PackageSettings(string Dir, long MaxBytes, TimeSpan Retention)
{
    public string CacheDir => Path.Combine(Dir, "cache");

    public static PackageSettings Create(Config c, string dataDir)
    {
        if (c.IsNullOrEmpty()) throw new ConfigurationException("orchestrator.packages is missing");
        long bytes;
        try { bytes = c.GetByteSize("max-bytes") ?? 0; }
        catch (Exception ex) when (ex is FormatException or OverflowException)
        {
            throw new ConfigurationException($"orchestrator.packages.max-bytes must be a size such as 64 MiB, was {c.GetString("max-bytes", "(missing)")}");
        }
        if (bytes is < 1024 or > 1L << 31)
            throw new ConfigurationException($"orchestrator.packages.max-bytes must be between 1 KiB and 2 GiB, was {c.GetString("max-bytes", "(missing)")}");
        return new PackageSettings(Path.Combine(dataDir, "packages"), bytes, OrchestratorSettings.Positive(c, "retention", "packages"));
    }
}

/// <summary>
/// How members are marked down (<c>stable-after</c>: how long a member stays unreachable before the deciding
/// coordinator marks it down) and how a node without the coordinator role keeps itself in the coordinator's
/// cluster (<c>rejoin-without-coordinator-after</c>; null: it never rejoins by itself).
/// </summary>
public sealed record MembershipSettings(TimeSpan StableAfter, TimeSpan? RejoinWithoutCoordinatorAfter)
{
    public static MembershipSettings Create(Config c)
    {
        const string rejoin = "rejoin-without-coordinator-after";
        if (c.IsNullOrEmpty()) throw new ConfigurationException("orchestrator.membership is missing");
        var stableAfter = OrchestratorSettings.Positive(c, "stable-after", "membership");
        var rejoinAfter = string.Equals(c.GetString(rejoin, ""), "off", StringComparison.OrdinalIgnoreCase)
            ? (TimeSpan?)null
            : OrchestratorSettings.Positive(c, rejoin, "membership");
        // A worker that left before the coordinator could decide about it would rejoin while its old incarnation is
        // still being decided about; a coordinator that is merely restarting is waited for.
        if (rejoinAfter is { } r && r <= stableAfter)
            throw new ConfigurationException($"orchestrator.membership.{rejoin} ({r.TotalSeconds} s) must be longer than orchestrator.membership.stable-after ({stableAfter.TotalSeconds} s)");
        return new MembershipSettings(stableAfter, rejoinAfter);
    }
}
