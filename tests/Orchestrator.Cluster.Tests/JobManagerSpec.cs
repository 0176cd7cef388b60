using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Coordinator;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>
/// The job manager on a TestKit system (cluster provider, never joined, so no workers) with the
/// in-memory journal: validation at the edge, persistence before the answer, recovery, cancel.
/// </summary>
public sealed class JobManagerSpec() : TestKit(Config)
{
    private static readonly Config Config = ConfigurationFactory.ParseString("""
        akka.remote.dot-netty.tcp.port = 0
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        # The shipped exit-clr would end the test host when TestKit shuts the system down.
        akka.coordinated-shutdown.exit-clr = off
        akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.local"
        akka.persistence.snapshot-store.local.dir = "/tmp/orch-jobmanager-spec-snapshots"
        """).WithFallback(OrchestratorSettings.DefaultConfig());

    private const string Valid = """{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "maxSteps": 5 }""";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private IActorRef NewManager(string name)
    {
        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        return Sys.ActorOf(JobManager.Props(settings.Coordinator, settings.Packages), name);
    }

    [Fact]
    public async Task An_invalid_job_is_rejected_with_its_field_and_nothing_is_recorded()
    {
        var manager = NewManager("m1");
        manager.Tell(new SubmitJob("""{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "epochs": 0 }"""));
        var rejected = await ExpectMsgAsync<JobRejected>(Wait);
        Assert.Equal("epochs", rejected.Field);
        manager.Tell(new SubmitJob("""{ "name": "fm", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "allReduce": { "transport": "pigeon" } }"""));
        Assert.Equal("allReduce.transport", (await ExpectMsgAsync<JobRejected>(Wait)).Field);
        manager.Tell(new SubmitJob("not json"));
        await ExpectMsgAsync<JobRejected>(Wait);
        manager.Tell(ListJobs.Instance);
        Assert.Empty((await ExpectMsgAsync<JobList>(Wait)).Jobs);
    }

    [Fact]
    public async Task A_submit_beyond_the_queue_cap_is_refused_and_nothing_is_recorded()
    {
        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        var manager = Sys.ActorOf(JobManager.Props(settings.Coordinator with { MaxQueuedJobs = 2 }, settings.Packages), "capped");
        for (int i = 0; i < 2; i++)
        {
            manager.Tell(new SubmitJob(Valid));
            await ExpectMsgAsync<JobAccepted>(Wait);
        }
        manager.Tell(new SubmitJob(Valid));
        Assert.Equal(2, (await ExpectMsgAsync<QueueFull>(Wait)).Limit);
        manager.Tell(ListJobs.Instance);
        Assert.Equal(2, (await ExpectMsgAsync<JobList>(Wait)).Jobs.Count);
    }

    [Fact]
    public async Task An_accepted_job_waits_for_devices_with_the_reason_and_survives_a_restart()
    {
        var manager = NewManager("m2");
        manager.Tell(new SubmitJob(Valid));
        var accepted = await ExpectMsgAsync<JobAccepted>(Wait);
        Assert.Equal(("fm-1", "Queued"), (accepted.Id, accepted.State));
        manager.Tell(new SubmitJob(Valid));
        Assert.Equal("fm-2", (await ExpectMsgAsync<JobAccepted>(Wait)).Id);

        manager.Tell(new GetJob("fm-1"));
        var status = await ExpectMsgAsync<JobStatus>(Wait);
        Assert.Equal("waiting for 1 device on 1 worker; the cluster has 0 devices on 0 workers, 0 free", status.Message);
        manager.Tell(new GetJob("fm-2"));
        Assert.Equal("waiting behind 1 earlier job in the queue (first in, first out)", (await ExpectMsgAsync<JobStatus>(Wait)).Message);

        // A new incarnation with the same persistence id recovers both jobs from the journal.
        Watch(manager);
        Sys.Stop(manager);
        await ExpectTerminatedAsync(manager, Wait);
        var again = NewManager("m2-again");
        again.Tell(ListJobs.Instance);
        var jobs = (await ExpectMsgAsync<JobList>(Wait)).Jobs;
        Assert.Equal(["fm-1", "fm-2"], jobs.Select(j => j.Id));
        again.Tell(new SubmitJob(Valid));
        Assert.Equal("fm-3", (await ExpectMsgAsync<JobAccepted>(Wait)).Id);
    }

    [Fact]
    public async Task A_submit_retried_with_its_key_is_the_same_job_also_after_a_restart_and_other_keys_make_new_jobs()
    {
        var manager = NewManager("m4");
        manager.Tell(new SubmitJob(Valid, "k-1"));
        var first = await ExpectMsgAsync<JobAccepted>(Wait);
        manager.Tell(new SubmitJob(Valid, "k-1"));
        Assert.Equal(first.Id, (await ExpectMsgAsync<JobAccepted>(Wait)).Id);
        manager.Tell(new SubmitJob(Valid, "k-2"));
        var second = await ExpectMsgAsync<JobAccepted>(Wait);
        manager.Tell(new SubmitJob(Valid));
        var third = await ExpectMsgAsync<JobAccepted>(Wait);
        Assert.Equal(3, new[] { first.Id, second.Id, third.Id }.Distinct().Count());

        // The keys are in the journal: a new incarnation answers a late retry with the job it made.
        Watch(manager);
        Sys.Stop(manager);
        await ExpectTerminatedAsync(manager, Wait);
        var again = NewManager("m4-again");
        again.Tell(new SubmitJob(Valid, "k-1"));
        Assert.Equal(first.Id, (await ExpectMsgAsync<JobAccepted>(Wait)).Id);
        again.Tell(ListJobs.Instance);
        Assert.Equal(3, (await ExpectMsgAsync<JobList>(Wait)).Jobs.Count);
    }

    [Fact]
    public async Task Cancel_ends_a_queued_job_once_and_unknown_ids_are_not_found()
    {
        var manager = NewManager("m3");
        manager.Tell(new SubmitJob(Valid));
        var id = (await ExpectMsgAsync<JobAccepted>(Wait)).Id;
        manager.Tell(new CancelJob(id));
        Assert.Equal(new CancelResult(id, "Cancelled", true), await ExpectMsgAsync<CancelResult>(Wait));
        manager.Tell(new CancelJob(id));
        Assert.Equal(new CancelResult(id, "Cancelled", false), await ExpectMsgAsync<CancelResult>(Wait));
        manager.Tell(new GetJob("nope-9"));
        Assert.Equal("nope-9", (await ExpectMsgAsync<JobNotFound>(Wait)).Id);
        manager.Tell(new CancelJob("nope-9"));
        await ExpectMsgAsync<JobNotFound>(Wait);
    }
}
