using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Remote.Transport.DotNetty;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Security;

namespace Orchestrator.IntegrationTests;

/// <summary>
/// Strangers on the network of a running local cluster (its own CA, TLS between nodes): actor systems made in
/// this test process that know every address and path. Those without a certificate of the cluster's CA never
/// get a connection; one holding the cluster's own node certificate but not a member gets connections, and
/// every actor refuses what it sends. Neither changes anything: no job appears, no worker registers, no
/// checkpoint is stored, no node exits, and a job that runs meanwhile completes.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class StrangerTests : IDisposable
{
    private readonly LocalCluster _cluster = LocalCluster.Up(workers: 2);

    [Fact]
    public async Task Strangers_without_a_node_certificate_of_the_cluster_never_connect_and_change_nothing()
    {
        var job = _cluster.Submit(Jobs.Mlp("it-stranger-tls", maxSteps: 600, workers: 2, checkpointEvery: 200));
        var tls = Path.Combine(_cluster.Dir, "tls");
        using var ca = CertificateAuthority.Load(File.ReadAllText(Path.Combine(tls, "ca.crt")), File.ReadAllText(Path.Combine(tls, "ca.key")));
        using var otherCa = CertificateAuthority.Create("another cluster's CA");
        using var selfSignedKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var strangers = new (string Name, X509Certificate2? Certificate, bool Tls)[]
        {
            ("TLS off", null, false),
            ("a self-signed certificate", new CertificateRequest("CN=127.0.0.1, OU=node", selfSignedKey, HashAlgorithmName.SHA256)
                .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)), true),
            ("another CA's node certificate", otherCa.IssueNode(["127.0.0.1"]), true),
            ("an expired node certificate of this CA", ca.IssueNode(["127.0.0.1"], DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1)), true),
            ("this CA's client certificate (not a node's)", X509Certificate2.CreateFromPemFile(Path.Combine(tls, "client", "client.crt"), Path.Combine(tls, "client", "client.key")), true),
            ("no client certificate", null, true),
        };
        var coordinator = _cluster.Address("coordinator");
        foreach (var (name, certificate, useTls) in strangers)
        {
            using var stranger = Stranger.Start(name, certificate, useTls);
            var target = useTls ? coordinator : coordinator.Replace("akka.ssl.tcp://", "akka.tcp://");
            stranger.System.ActorSelection($"{target}/user/job-manager/*").Tell(new JobProtocol.SubmitJob(RogueJob));
            stranger.System.ActorSelection($"{target}/user/job-manager/job-manager").Tell(new JobProtocol.SubmitJob(RogueJob));
            // Nobody answers a stranger: it never has a connection to send on, so its Identify ends in its own dead
            // letters (which answer "no such actor") or times out.
            ActorIdentity? identity = null;
            try { identity = await stranger.System.ActorSelection($"{target}/user/job-manager/job-manager").Ask<ActorIdentity>(new Identify(1), TimeSpan.FromSeconds(5)); }
            catch (AskTimeoutException) { }
            Assert.True(identity?.Subject is null, $"{name}: the job manager answered {identity?.Subject}");
        }

        AssertNothingChanged(job);
        var log = _cluster.Log("coordinator");
        Assert.Contains("refused a TLS connection from", log);
        Assert.Contains("not trusted by the cluster CA", log);
        Assert.Contains("did not provide a certificate", log);   // Akka refuses that one before our check runs
    }

    [Fact]
    public async Task A_holder_of_a_node_certificate_that_is_not_a_member_is_refused_by_every_actor_and_decodes_nothing()
    {
        var job = _cluster.Submit(Jobs.Mlp("it-stranger-insider", maxSteps: 600, workers: 2, checkpointEvery: 200));
        _cluster.WaitFor(job, s => s.GetProperty("state").GetString() == "Running", TimeSpan.FromSeconds(60));
        var folder = Path.Combine(_cluster.Dir, "tls", "nodes", "127.0.0.1");
        using var stranger = Stranger.Start("insider", X509Certificate2.CreateFromPemFile(Path.Combine(folder, "node.crt"), Path.Combine(folder, "node.key")), true);
        var coordinator = _cluster.Address("coordinator");
        var worker = _cluster.Address("worker-1");
        IActorRef At(string path) => ((ExtendedActorSystem)stranger.System).Provider.ResolveActorRef(path);
        var me = stranger.System.ActorOf(Props.Create(() => new Sink()), "me");   // the sender every message names

        // The job manager: by an untrusted selection, and straight at the singleton's path.
        stranger.System.ActorSelection($"{coordinator}/user/job-manager/*").Tell(new JobProtocol.SubmitJob(RogueJob), me);
        At($"{coordinator}/user/job-manager/job-manager").Tell(new JobProtocol.SubmitJob(RogueJob), me);
        At($"{coordinator}/user/job-manager/job-manager").Tell(new JobProtocol.CancelJob(job), me);
        // A fake worker registering itself at a worker's address, and an order to a real worker.
        At($"{coordinator}/user/job-manager/job-manager/job-manager/worker-registry").Tell(new ClusterProtocol.WorkerInventory(worker, [new ClusterProtocol.DeviceInfo("cpu", 0, null)], null), me);
        At($"{worker}/user/worker-agent").Tell(new TrainingProtocol.StartTraining("rogue-1", RogueJob, 1, 0, 1, [worker]), me);
        // A checkpoint far ahead of the job's, which would become its resume point (and whose retention would delete the real ones).
        var offer = new CheckpointProtocol.SnapshotOffer("t-rogue", job, RogueJob, 1, 999_999_999, 0, 0, 64, new string('0', 64), 10, 10, new string('0', 64));
        At($"{coordinator}/user/checkpoint-store").Tell(offer, me);
        At($"{coordinator}/user/checkpoint-store").Tell(new CheckpointProtocol.UploaderFor(job, 1, "akka.ssl.tcp://stranger@127.0.0.1:1"), me);
        // Type-named JSON (Akka's Newtonsoft serializer, id 1) to every role's actors, and a remote deployment onto a worker.
        var canary = new Dictionary<string, object> { ["canary"] = new FileCanary(Path.Combine(_cluster.Dir, "canary")) };
        foreach (var path in new[] { $"{coordinator}/user/job-manager/job-manager", $"{coordinator}/user/checkpoint-store", $"{coordinator}/user/package-store",
                     $"{worker}/user/worker-agent" })
            At(path).Tell(canary, me);
        stranger.System.ActorOf(Props.Create(() => new Canary(Path.Combine(_cluster.Dir, "deployed")))
            .WithDeploy(Deploy.None.WithScope(new RemoteScope(Address.Parse(worker)))), "canary");

        AssertNothingChanged(job);
        var coordinatorLog = _cluster.Log("coordinator");
        var workerLog = _cluster.Log("worker-1");
        Assert.Contains("refused SubmitJob from akka.ssl.tcp://stranger@", coordinatorLog);
        Assert.Contains("refused CancelJob from akka.ssl.tcp://stranger@", coordinatorLog);
        Assert.Contains("refused a worker registration", coordinatorLog);
        Assert.Contains("refused SnapshotOffer from akka.ssl.tcp://stranger@", coordinatorLog);
        Assert.Contains("refused UploaderFor from akka.ssl.tcp://stranger@", coordinatorLog);
        Assert.Contains("refused StartTraining from akka.ssl.tcp://stranger@", workerLog);
        Assert.Contains("type-name JSON decoding (serializer 1) is switched off", coordinatorLog);
        Assert.Contains("type-name JSON decoding (serializer 1) is switched off", workerLog);
        Assert.Contains("remote deployment (serializer 3) is switched off", workerLog);
        Assert.False(File.Exists(Path.Combine(_cluster.Dir, "canary")));
        Assert.False(File.Exists(Path.Combine(_cluster.Dir, "deployed")));
    }

    private const string RogueJob = """{ "name": "rogue", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": 1, "epochs": 1 }""";

    /// <summary>The job completes, no rogue job is listed, two workers are registered, every node still runs, no checkpoint is beyond the job's steps.</summary>
    private void AssertNothingChanged(string job)
    {
        var status = _cluster.WaitFor(job, s => s.GetProperty("state").GetString() is "Completed" or "Failed", TimeSpan.FromSeconds(180));
        Assert.True(status.GetProperty("state").GetString() == "Completed", status.ToString());
        var jobs = _cluster.Json("list").EnumerateArray().Select(j => j.GetProperty("name").GetString()).ToList();
        Assert.DoesNotContain("rogue", jobs);
        Assert.Equal(2, _cluster.Json("workers").GetArrayLength());
        foreach (var node in new[] { "coordinator", "worker-1", "worker-2" }) Assert.True(_cluster.IsRunning(node), $"{node} exited");
        foreach (var checkpoint in _cluster.Json("checkpoints", job).EnumerateArray())
            Assert.True(checkpoint.GetProperty("step").GetInt64() <= 600, checkpoint.ToString());
    }

    public void Dispose() => _cluster.Dispose();

    /// <summary>A type whose setter writes a file: decoding it anywhere would leave <c>canary</c> in the run folder.</summary>
    public sealed class FileCanary(string path)
    {
        private string _path = path;   // set here without writing: only a decoder calls the setter
        public string Path
        {
            get => _path;
            set { _path = value; if (value.Length > 0) File.WriteAllText(value, "decoded"); }
        }
    }

    /// <summary>Where the nodes' answers to the stranger go (they give none).</summary>
    private sealed class Sink : ReceiveActor
    {
        public Sink() => ReceiveAny(_ => { });
    }

    /// <summary>An actor that writes a file when it is created: it must never be created on a node.</summary>
    private sealed class Canary : ReceiveActor
    {
        public Canary(string path) => File.WriteAllText(path, "created");
    }

    /// <summary>A plain Akka.NET system (provider remote, not a member) that speaks our serializer, with or without TLS.</summary>
    private sealed class Stranger : IDisposable
    {
        public ActorSystem System { get; }

        private Stranger(ActorSystem system) => System = system;

        public static Stranger Start(string name, X509Certificate2? certificate, bool tls)
        {
            var config = ConfigurationFactory.ParseString($$"""
                akka.actor.provider = remote
                akka.actor.serializers.orchestrator = "Orchestrator.Core.Serialization.OrchestratorSerializer, Orchestrator.Core"
                akka.actor.serialization-bindings { "Orchestrator.Core.Protocol.IOrchestratorMessage, Orchestrator.Core" = orchestrator }
                akka.actor.serialization-identifiers { "Orchestrator.Core.Serialization.OrchestratorSerializer, Orchestrator.Core" = 4711 }
                akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0, enable-ssl = {{(tls ? "on" : "off")}}, maximum-frame-size = 256000b }
                akka.coordinated-shutdown.exit-clr = off
                akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
                akka.loglevel = WARNING
                """);
            var setup = BootstrapSetup.Create().WithConfig(config);
            // It accepts any server: the node must be the one to refuse. "No client certificate" listens with a throwaway
            // certificate (Akka's TLS needs one) and presents none when it connects.
            using var throwawayKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var own = certificate ?? new CertificateRequest("CN=127.0.0.1", throwawayKey, HashAlgorithmName.SHA256)
                .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            var all = tls
                ? ActorSystemSetup.Create(setup, new DotNettySslSetup(own, suppressValidation: true, requireMutualAuthentication: certificate is not null))
                : ActorSystemSetup.Create(setup);
            return new Stranger(ActorSystem.Create("stranger", all));
        }

        public void Dispose() => System.Terminate().Wait(TimeSpan.FromSeconds(10));
    }
}
