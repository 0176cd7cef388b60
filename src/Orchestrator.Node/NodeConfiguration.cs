using System.Globalization;
using Akka.Configuration;
using Akka.Persistence.Sql;
using Microsoft.Data.Sqlite;
using Orchestrator.Core.Settings;

namespace Orchestrator.Node;

/// <summary>
/// The node's configuration, layered (later wins): shipped defaults (reference.conf, Akka.Persistence.Sql's
/// defaults), then the <c>--config</c> files in order (cluster-config/), then the command line
/// (<c>--set path=value</c>, then the named options). Read once; settings are validated before anything starts.
/// </summary>
public sealed record NodeConfiguration(Config Config, OrchestratorSettings Settings, string Hostname, int Port, IReadOnlyList<string> Seeds, NodeTls? Tls)
{
    public const string SeedsVariable = "ORCHESTRATOR_SEEDS";

    /// <summary>Akka's address scheme on this cluster: TLS unless the node runs <c>--insecure</c>.</summary>
    public string Scheme => Tls is null ? "akka.tcp" : "akka.ssl.tcp";

    public static NodeConfiguration Build(NodeOptions options)
    {
        var config = OrchestratorSettings.DefaultConfig();
        foreach (var file in options.ConfigFiles)
        {
            if (!File.Exists(file)) throw new NodeUsageException($"--config: file not found: {file}");
            try { config = ConfigurationFactory.ParseString(File.ReadAllText(file)).WithFallback(config); }
            catch (Exception ex) when (ex is not OutOfMemoryException)   // the HOCON parser throws several types
            {
                throw new NodeUsageException($"--config {file}: not valid HOCON: {ex.Message}");
            }
        }
        foreach (var setting in options.Settings)
        {
            int eq = setting.IndexOf('=');
            if (eq <= 0) throw new NodeUsageException($"--set must be path=value, was '{setting}'");
            try { config = ConfigurationFactory.ParseString($"{setting[..eq].Trim()} = {setting[(eq + 1)..]}").WithFallback(config); }
            catch (Exception ex) when (ex is not OutOfMemoryException)   // the HOCON parser throws several types
            {
                throw new NodeUsageException($"--set {setting}: not valid HOCON: {ex.Message}");
            }
        }
        var overrides = new List<string>();
        if (options.DataDir is { } dir) overrides.Add($"orchestrator.data-dir = {Quote(dir)}");
        if (options.ApiPort is { } apiPort) overrides.Add($"orchestrator.api.port = {apiPort}");
        if (overrides.Count > 0) config = ConfigurationFactory.ParseString(string.Join("\n", overrides)).WithFallback(config);

        OrchestratorSettings settings;
        try { settings = OrchestratorSettings.Create(config); }
        catch (ConfigurationException ex) { throw new NodeUsageException($"configuration: {ex.Message}"); }

        var hostname = options.Hostname ?? config.GetString("akka.remote.dot-netty.tcp.hostname", null) ?? "127.0.0.1";
        if (string.IsNullOrWhiteSpace(hostname)) hostname = "127.0.0.1";
        var port = options.Port ?? config.GetInt("akka.remote.dot-netty.tcp.port", 0);
        if (port is < 0 or > 65535) throw new NodeUsageException($"--port must be in [0, 65535], was {port}");

        var tls = NodeTls.Resolve(options, config, hostname, settings.Api.Hostname);
        var scheme = tls is null ? "akka.tcp" : "akka.ssl.tcp";

        var seeds = options.Seeds.Count > 0 ? options.Seeds
            : Environment.GetEnvironmentVariable(SeedsVariable) is { Length: > 0 } env
                ? env.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                : config.GetStringList("akka.cluster.seed-nodes", []).ToArray();
        foreach (var seed in seeds)
            if (!seed.StartsWith(scheme + "://", StringComparison.Ordinal) || !Uri.TryCreate(seed.Replace(scheme + "://", "tcp://"), UriKind.Absolute, out var uri) || uri.Port <= 0)
                throw new NodeUsageException($"seed node must look like {scheme}://orchestrator@host:port{(tls is null ? " (--insecure)" : "")}, was '{seed}'");

        var dataDir = Path.GetFullPath(settings.DataDir);
        settings = settings with { DataDir = dataDir };
        // Defaults under what the files and --set chose: a journal configured for PostgreSQL must not be overridden by SQLite's.
        config = config.WithFallback(PersistenceDefaults(dataDir)).WithFallback(SqlPersistence.DefaultConfiguration);
        return new NodeConfiguration(config, settings, hostname, port, seeds, tls);
    }

    /// <summary>
    /// Journal and snapshots in two SQLite files in the data folder, unless a configuration file chose
    /// another database (PostgreSQL for a shared deployment: set provider-name and connection-string).
    /// </summary>
    private static Config PersistenceDefaults(string dataDir) => ConfigurationFactory.ParseString($$"""
        akka.persistence {
          journal {
            plugin = "akka.persistence.journal.sql"
            sql { connection-string = {{Quote("Data Source=" + Path.Combine(dataDir, "journal.db"))}}, provider-name = "SQLite.MS", auto-initialize = on }
          }
          snapshot-store {
            plugin = "akka.persistence.snapshot-store.sql"
            sql { connection-string = {{Quote("Data Source=" + Path.Combine(dataDir, "snapshots.db"))}}, provider-name = "SQLite.MS", auto-initialize = on }
          }
        }
        """);

    /// <summary>Turns on SQLite's write-ahead log for the journal and snapshot files (the mode is stored in the file).</summary>
    public void PrepareSqlite()
    {
        foreach (var plugin in new[] { "akka.persistence.journal.sql", "akka.persistence.snapshot-store.sql" })
        {
            if (Config.GetString($"{plugin}.provider-name", "") != "SQLite.MS") continue;
            var connection = Config.GetString($"{plugin}.connection-string", "");
            var builder = new SqliteConnectionStringBuilder(connection);
            if (Path.GetDirectoryName(Path.GetFullPath(builder.DataSource)) is { } folder) Directory.CreateDirectory(folder);
            using var db = new SqliteConnection(connection);
            db.Open();
            using var pragma = db.CreateCommand();
            pragma.CommandText = "PRAGMA journal_mode=WAL;";
            var mode = Convert.ToString(pragma.ExecuteScalar(), CultureInfo.InvariantCulture);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"{builder.DataSource}: SQLite refused write-ahead logging (journal_mode is {mode})");
        }
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
