using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Coordinator;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>
/// The job manager behind its guard, on a journal that fails writes on demand: a failed write stops the
/// manager (Akka.Persistence does), the guard answers with the reason meanwhile and starts it again, and
/// once writes work again nothing acknowledged is lost and new jobs are taken.
/// </summary>
[Collection("flaky journal")]   // FlakyJournal.Failing is one switch for the process
public sealed class JobManagerGuardSpec() : TestKit(ConfigurationFactory.ParseString(FlakyJournal.SystemConfig + "\n" + """
        akka.persistence.snapshot-store.local.dir = "/tmp/orch-guard-spec-snapshots"
        """).WithFallback(OrchestratorSettings.DefaultConfig()))
{
    private const string Valid = """{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 5 }""";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_failed_journal_write_gets_the_reason_then_the_manager_comes_back_by_itself_and_nothing_acknowledged_is_lost()
    {
        FlakyJournal.Failing = false;
        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        // A first backoff of 3 s, so that the test sees the guard's answer while the manager is down.
        var guard = Sys.ActorOf(JobManagerGuard.PropsFor(JobManager.Props(settings.Coordinator, settings.Packages), TimeSpan.FromSeconds(3)), "guarded");
        guard.Tell(new SubmitJob(Valid));
        Assert.Equal("fm-1", (await ExpectMsgAsync<JobAccepted>(Wait)).Id);

        FlakyJournal.Failing = true;
        try
        {
            guard.Tell(new SubmitJob(Valid));
            var refused = await ExpectMsgAsync<JobManagerUnavailable>(Wait);
            Assert.Contains("No space left on device", refused.Reason);
            Assert.Contains("nothing was recorded", refused.Reason);
            // Meanwhile every request gets the reason at once, not a timeout.
            await AwaitAssertAsync(async () =>
            {
                guard.Tell(ListJobs.Instance);
                var down = await ExpectMsgAsync<JobManagerUnavailable>(TimeSpan.FromMilliseconds(400));
                Assert.Contains("the job manager is down: the journal could not record JobSubmitted: No space left on device", down.Reason);
            }, TimeSpan.FromSeconds(2.5), TimeSpan.FromMilliseconds(50));
        }
        finally { FlakyJournal.Failing = false; }

        // Space is back: within the backoff the manager is up again, with what it acknowledged, and takes new jobs.
        await AwaitAssertAsync(async () =>
        {
            guard.Tell(ListJobs.Instance);
            var list = await ExpectMsgAsync<JobList>(TimeSpan.FromSeconds(2));
            Assert.Equal(["fm-1"], list.Jobs.Select(j => j.Id));
        }, TimeSpan.FromSeconds(30));
        guard.Tell(new SubmitJob(Valid));
        Assert.Equal("fm-2", (await ExpectMsgAsync<JobAccepted>(Wait)).Id);
    }
}
