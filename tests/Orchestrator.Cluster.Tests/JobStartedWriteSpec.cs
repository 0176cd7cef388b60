using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Coordinator;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.ClusterProtocol;
using static Orchestrator.Core.Protocol.JobProtocol;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>
/// A ring generation is used only once it is in the journal: when the JobStarted write fails, no worker hears
/// StartTraining; once writes work again the job starts with generation 1, never a generation that a lost event
/// had handed out. One node with the coordinator and worker roles, whose worker agent is a stand-in.
/// </summary>
[Collection("flaky journal")]   // FlakyJournal.Failing is one switch for the process
public sealed class JobStartedWriteSpec() : TestKit(ConfigurationFactory.ParseString(FlakyJournal.SystemConfig + "\n" + """
        akka.cluster.roles = [coordinator, worker]
        akka.persistence.snapshot-store.local.dir = "/tmp/orch-started-spec-snapshots"
        """).WithFallback(OrchestratorSettings.DefaultConfig()))
{
    private const string Job = """{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 5 }""";

    /// <summary>Answers the registry as a worker with one CPU device; hands every order to the test.</summary>
    private sealed class StandInAgent : ReceiveActor
    {
        public StandInAgent(IActorRef test)
        {
            var self = Akka.Cluster.Cluster.Get(Context.System).SelfAddress.ToString();
            Receive<RequestInventory>(_ => Sender.Tell(new WorkerInventory(self, [new DeviceInfo("cpu", 0, null)], null)));
            ReceiveAny(m => test.Forward(m));
        }
    }

    [Fact]
    public async Task No_worker_hears_of_a_generation_whose_JobStarted_was_not_written_and_the_job_starts_with_generation_1_later()
    {
        FlakyJournal.Failing = false;
        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        var orders = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new StandInAgent(orders.Ref)), "worker-agent");
        var guard = Sys.ActorOf(JobManagerGuard.PropsFor(JobManager.Props(settings.Coordinator, settings.Packages), TimeSpan.FromSeconds(3)), "guarded");
        guard.Tell(new SubmitJob(Job));
        Assert.Equal("fm-1", (await ExpectMsgAsync<JobAccepted>(TimeSpan.FromSeconds(10))).Id);

        FlakyJournal.Failing = true;
        try
        {
            // The worker joins now: the job is scheduled, and its JobStarted write fails.
            Akka.Cluster.Cluster.Get(Sys).Join(Akka.Cluster.Cluster.Get(Sys).SelfAddress);
            await AwaitAssertAsync(async () =>
            {
                guard.Tell(ListJobs.Instance);
                var down = await ExpectMsgAsync<JobManagerUnavailable>(TimeSpan.FromMilliseconds(400));
                Assert.Contains("could not record JobStarted", down.Reason);
            }, TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(100));
            await orders.ExpectNoMsgAsync(TimeSpan.FromSeconds(1));   // no StartTraining went out
        }
        finally { FlakyJournal.Failing = false; }

        // Writes work again: the manager comes back, finds fm-1 still queued and starts it with generation 1.
        var start = await orders.FishForMessageAsync<StartTraining>(m => m is StartTraining, TimeSpan.FromSeconds(40));
        Assert.Equal("fm-1", start.JobId);
        Assert.Equal(1, start.Generation);
        Assert.Equal(32, start.RingKey?.Length);
    }
}
