using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Orchestrator.Cluster.Checkpoint;
using Orchestrator.Cluster.Coordinator;
using Orchestrator.Cluster.Packages;
using Orchestrator.Cluster.Membership;
using Orchestrator.Cluster.Metrics;
using Orchestrator.Core.Settings;
using Orchestrator.Cluster.Worker;
using Orchestrator.Core.Serialization;

namespace Orchestrator.Node;

/// <summary>
/// Wires a node in one place: the actor system (remoting, clustering, the serializer, the roles'
/// actors) on the .NET generic host, plus the job API on coordinator nodes. The process ends when
/// the actor system does (for instance when the split-brain resolver downs this node), except on a node
/// without the coordinator role that leaves its cluster to join the coordinator's again (<see cref="CoordinatorWatch"/>).
/// </summary>
public static class NodeHost
{
    public const string SystemName = "orchestrator";

    public static async Task<int> RunAsync(NodeOptions options, CancellationToken cancellation)
    {
        var node = NodeConfiguration.Build(options);
        var seeds = node.Seeds.ToArray();
        if (seeds.Length == 0)
        {
            if (!options.Has("coordinator"))
                throw new NodeUsageException($"no seed nodes: give --seed {node.Scheme}://{SystemName}@host:port, ${NodeConfiguration.SeedsVariable} or akka.cluster.seed-nodes");
            if (node.Port == 0) throw new NodeUsageException("a coordinator without seed nodes seeds itself, so it needs a fixed --port");
            seeds = [$"{node.Scheme}://{SystemName}@{node.Hostname}:{node.Port}"];
        }
        if (node.Tls is null)
            Console.Error.WriteLine($"[WARNING][{DateTime.UtcNow:MM/dd/yyyy HH:mm:ss.fff}Z][orchestrator-node] --insecure: no TLS between nodes; " +
                                    "anyone who can reach this node's ports can join its cluster (development on loopback only)");
        else
            Console.WriteLine($"[INFO][{DateTime.UtcNow:MM/dd/yyyy HH:mm:ss.fff}Z][orchestrator-node] TLS between nodes with {node.Tls.Folder}: " +
                              $"'{node.Tls.Certificate.Subject}' (valid until {node.Tls.Certificate.NotAfter:yyyy-MM-dd}), peers must chain to '{node.Tls.Trust.Ca.Subject}'");
        Directory.CreateDirectory(node.Settings.DataDir);
        using var metricsServer = StartMetricsServer(node.Settings.Metrics);

        if (!options.Has("coordinator"))
        {
            // A node without the coordinator role starts over when its CoordinatorWatch ends the actor system
            // for want of a coordinator: a fresh host joins through the seeds again (on the same address when
            // the port is fixed). Any other ending (stopped, downed) ends the process, as on coordinator nodes
            // (with rejoining off, exit-clr stays on and ends it first, as there).
            while (true)
            {
                var builder = Host.CreateApplicationBuilder([]);
                ConfigureLogging(builder.Logging);
                AddAkka(builder.Services, options, node, seeds);
                using var host = builder.Build();
                await host.StartAsync(cancellation);
                var system = host.Services.GetRequiredService<ActorSystem>();
                NodeMetrics.WatchCluster(system);
                var shutdown = CoordinatedShutdown.Get(system);
                ExitIfTerminationHangs(system, shutdown);
                await host.WaitForShutdownAsync(cancellation);
                var reason = shutdown.ShutdownReason;
                if (cancellation.IsCancellationRequested || reason is not CoordinatorWatch.RejoinReason) return reason?.ExitCode ?? 0;
                Console.WriteLine($"[INFO][{DateTime.UtcNow:MM/dd/yyyy HH:mm:ss.fff}Z][orchestrator-node] the actor system ended ({reason}); " +
                                  $"starting a fresh one that joins through {string.Join(", ", seeds)}");
            }
        }

        node.PrepareSqlite();
        var token = ApiToken.Load(node.Settings.Api.Token, node.Settings.DataDir);
        var web = WebApplication.CreateSlimBuilder([]);
        ConfigureLogging(web.Logging);
        // HTTPS with the node's certificate whenever the node has one (the client checks it against the cluster CA);
        // plain HTTP only for an --insecure node, which is on loopback.
        if (node.Tls is { } apiTls)
        {
            web.WebHost.UseKestrelHttpsConfiguration();
            web.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(https => https.ServerCertificate = apiTls.Certificate));
        }
        web.WebHost.UseUrls($"{(node.Tls is null ? "http" : "https")}://{node.Settings.Api.Hostname}:{node.Settings.Api.Port}");
        web.Services.ConfigureHttpJsonOptions(json =>
            json.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals);
        AddAkka(web.Services, options, node, seeds);
        var app = web.Build();
        JobApi.Map(app, token, node.Settings.Api.AskTimeout, new PackageStore(node.Settings.Packages.Dir, node.Settings.Packages.MaxBytes), new Web.UiSessions());
        await app.StartAsync(cancellation);
        NodeMetrics.WatchCluster(app.Services.GetRequiredService<ActorSystem>());
        await app.WaitForShutdownAsync(cancellation);
        return 0;
    }

    /// <summary>
    /// The node's Prometheus metrics on a port of its own (<c>orchestrator.metrics.port</c>; none when 0), served by
    /// prometheus-net's own Kestrel server, without a token: loopback unless configured otherwise.
    /// </summary>
    private static IDisposable? StartMetricsServer(MetricsSettings settings)
    {
        if (settings.Port == 0) return null;
        var server = new Prometheus.KestrelMetricServer(settings.Hostname, settings.Port);
        try { server.Start(); }
        catch (IOException ex) { throw new NodeUsageException($"orchestrator.metrics.port: cannot listen on {settings.Hostname}:{settings.Port}: {ex.Message}"); }
        Console.WriteLine($"[INFO][{DateTime.UtcNow:MM/dd/yyyy HH:mm:ss.fff}Z][orchestrator-node] Prometheus metrics at http://{settings.Hostname}:{settings.Port}/metrics");
        return server;
    }

    /// <summary>
    /// Stands in for the guard that <c>exit-clr</c> (off on nodes that may start over) gives: once a
    /// shutdown has begun, an actor system that has not terminated within the phases' total timeout ends
    /// the process with the reason's exit code, so that a downed node cannot hang on as a zombie.
    /// </summary>
    private static void ExitIfTerminationHangs(ActorSystem system, CoordinatedShutdown shutdown) =>
        shutdown.AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "exit-if-termination-hangs", () =>
        {
            _ = Task.WhenAny(system.WhenTerminated, Task.Delay(shutdown.TotalTimeout + TimeSpan.FromSeconds(5))).ContinueWith(_ =>
            {
                if (system.WhenTerminated.IsCompleted) return;
                Console.Error.WriteLine($"orchestrator-node: the actor system did not terminate within {shutdown.TotalTimeout.TotalSeconds:F0} s of its shutdown ({shutdown.ShutdownReason}); exiting");
                Environment.Exit(shutdown.ShutdownReason?.ExitCode ?? 1);
            }, TaskScheduler.Default);
            return Task.FromResult(Akka.Done.Instance);
        });

    private static void ConfigureLogging(ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
    }

    private static void AddAkka(IServiceCollection services, NodeOptions options, NodeConfiguration node, string[] seeds)
    {
        var settings = node.Settings;
        services.AddAkka(SystemName, b =>
        {
            b.AddHocon(node.Config, HoconAddMode.Append)
             .WithRemoting(new RemoteOptions { HostName = node.Hostname, Port = node.Port, EnableSsl = node.Tls is not null })
             .WithClustering(new ClusterOptions { Roles = [.. options.Roles], SeedNodes = seeds })
             .WithCustomSerializer("orchestrator", [typeof(Core.Protocol.IOrchestratorMessage)], system => new OrchestratorSerializer(system))
             .WithStrictSerialization();
            if (node.Tls is { } tls) b.AddSetup(tls.AkkaSetup());

            if (!options.Has("coordinator") && settings.Membership.RejoinWithoutCoordinatorAfter is { } limit)
            {
                // The host decides whether the process ends (see RunAsync), so ending the actor system must not end
                // the CLR: exit-clr is off here whatever the configuration says, and ExitIfTerminationHangs guards.
                b.AddHocon("akka.coordinated-shutdown.exit-clr = off", HoconAddMode.Prepend);
                b.WithActors((system, _) => system.ActorOf(CoordinatorWatch.Props(limit), CoordinatorWatch.Name));
            }

            if (options.Has("coordinator"))
            {
                b.WithSingleton<JobManagerKey>("job-manager", JobManagerGuard.Props(settings.Coordinator, settings.Packages, settings.DataDir),
                    new ClusterSingletonOptions { Role = "coordinator" }, createProxyToo: true);
                b.WithActors((system, _) => system.ActorOf(PackageServer.Props(new PackageStore(settings.Packages.Dir, settings.Packages.MaxBytes)), PackageServer.Name));
            }

            if (options.Has(CheckpointStoreLocator.Role))
                b.WithActors((system, _) => system.ActorOf(CheckpointStore.Props(settings.Checkpoint, settings.Packages), CheckpointStore.Name));

            if (options.Has("worker"))
                b.WithActors((system, _) =>
                {
                    var self = Akka.Cluster.Cluster.Get(system).SelfAddress.ToString();
                    var devices = DeviceInventory.Detect(settings.Worker);
                    system.ActorOf(WorkerAgent.Props(self, devices, settings.DataDir, settings.Worker, settings.Packages), WorkerAgent.Name);
                });
        });
    }
}
