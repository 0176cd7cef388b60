using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Worker;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>The worker agent on a local TestKit system: what it refuses before any training starts.</summary>
public sealed class WorkerAgentSpec() : TestKit(ConfigurationFactory.ParseString("akka.coordinated-shutdown.exit-clr = off")
    .WithFallback(OrchestratorSettings.DefaultConfig()))
{
    private readonly string _dataDir = Path.Combine(Directory.CreateTempSubdirectory("agent-").FullName, "data");

    private const string Spec = """{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 1 }""";

    [Theory]
    [InlineData("../../escape")]
    [InlineData("/etc/escape")]
    [InlineData(".hidden")]
    public async Task A_job_id_that_is_not_a_plain_name_is_refused_and_nothing_is_written_outside_the_data_folder(string id)
    {
        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        var agent = Sys.ActorOf(WorkerAgent.Props("node-a", [new Core.Protocol.ClusterProtocol.DeviceInfo("cpu", 0, null)], _dataDir, settings.Worker, settings.Packages));
        agent.Tell(new StartTraining(id, Spec, 1, 0, 1, ["node-a"]), TestActor);
        var failed = await ExpectMsgAsync<TrainingFailed>(TimeSpan.FromSeconds(10));
        Assert.Contains($"invalid job id '{id}'", failed.Error);
        var root = Path.GetDirectoryName(_dataDir)!;
        Assert.False(Directory.Exists(Path.Combine(_dataDir, "jobs")));
        Assert.False(Directory.Exists(Path.Combine(root, "escape")));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(root), e => e != _dataDir);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        var root = Path.GetDirectoryName(_dataDir)!;
        if (Directory.Exists(root)) Directory.Delete(root, true);
    }
}
