using Akka.Configuration;
using Orchestrator.Core.Settings;

namespace Orchestrator.Core.Tests;

/// <summary>
/// The config guard (TESTING.md recipe 12): the shipped values that the reliability and security
/// promises rest on. Changing one of these is a decision: change the test with it.
/// </summary>
public sealed class ConfigSpec
{
    private static readonly Config Shipped = OrchestratorSettings.DefaultConfig();

    [Fact]
    public void Cluster_failure_handling_is_pinned()
    {
        Assert.Equal("cluster", Shipped.GetString("akka.actor.provider"));
        Assert.Equal("Orchestrator.Cluster.Membership.CoordinatorFirstDowningProvider, Orchestrator.Cluster", Shipped.GetString("akka.cluster.downing-provider-class"));
        Assert.Equal(TimeSpan.FromSeconds(7), OrchestratorSettings.Create(Shipped).Membership.StableAfter);
        Assert.Equal(1000, OrchestratorSettings.Create(Shipped).Coordinator.SnapshotEvery);
        Assert.Equal(TimeSpan.FromSeconds(1), Shipped.GetTimeSpan("akka.cluster.failure-detector.heartbeat-interval"));
        Assert.Equal(TimeSpan.FromSeconds(3), Shipped.GetTimeSpan("akka.cluster.failure-detector.acceptable-heartbeat-pause"));
        Assert.True(Shipped.GetBoolean("akka.cluster.run-coordinated-shutdown-when-down"));
        Assert.True(Shipped.GetBoolean("akka.coordinated-shutdown.exit-clr"));
    }

    [Fact]
    public void A_node_without_a_coordinator_rejoins_after_20_s_and_the_operator_can_turn_that_off()
    {
        Assert.Equal(TimeSpan.FromSeconds(20), OrchestratorSettings.Create(Shipped).Membership.RejoinWithoutCoordinatorAfter);
        var off = ConfigurationFactory.ParseString("orchestrator.membership.rejoin-without-coordinator-after = off").WithFallback(Shipped);
        Assert.Null(OrchestratorSettings.Create(off).Membership.RejoinWithoutCoordinatorAfter);
        // Rejoining before the coordinator has decided about the old incarnation would race its decision.
        var early = ConfigurationFactory.ParseString("orchestrator.membership.rejoin-without-coordinator-after = 5s").WithFallback(Shipped);
        var error = Assert.Throws<ConfigurationException>(() => OrchestratorSettings.Create(early));
        Assert.Contains("must be longer than orchestrator.membership.stable-after (7 s)", error.Message);
    }

    [Fact]
    public void The_wire_is_our_serializer_with_a_fixed_frame_size()
    {
        Assert.Equal("orchestrator", Shipped.GetString("akka.actor.serialization-bindings.\"Orchestrator.Core.Protocol.IOrchestratorMessage, Orchestrator.Core\""));
        Assert.Equal(256_000L, Shipped.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size"));
    }

    [Fact]
    public void Nothing_from_the_network_is_decoded_by_type_name_and_remote_deployment_and_harmful_messages_are_dropped()
    {
        Assert.Equal("Orchestrator.Core.Serialization.NoJsonSerializer, Orchestrator.Core", Shipped.GetString("akka.actor.serializers.json"));
        Assert.Equal("Orchestrator.Core.Serialization.NoRemoteDeploymentSerializer, Orchestrator.Core", Shipped.GetString("akka.actor.serializers.daemon-create"));
        Assert.Equal("Orchestrator.Core.Serialization.GuardedMiscSerializer, Orchestrator.Core", Shipped.GetString("akka.actor.serializers.akka-misc"));
        Assert.Equal("Orchestrator.Core.Serialization.GuardedSystemMessageSerializer, Orchestrator.Core", Shipped.GetString("akka.actor.serializers.akka-system-msg"));
        Assert.True(Shipped.GetBoolean("akka.remote.untrusted-mode"));
        // Selections from other nodes: Akka Cluster's own paths, the job manager singleton's, the worker agent. Nothing else.
        Assert.Equal(["/system/cluster/core/daemon", "/system/cluster/heartbeatReceiver", "/system/remote-watcher",
                      "/user/job-manager", "/user/job-manager/job-manager", "/user/worker-agent"],
            Shipped.GetStringList("akka.remote.trusted-selection-paths"));
        Assert.Equal("", Shipped.GetString("orchestrator.tls.dir"));
    }

    [Fact]
    public void Checkpoints_live_in_the_data_folder_and_evaluation_takes_one_thread_by_default()
    {
        var settings = Orchestrator.Core.Settings.OrchestratorSettings.Create(ConfigurationFactory.ParseString("orchestrator.data-dir = /srv/o").WithFallback(Shipped));
        Assert.Equal(Path.Combine("/srv/o", "checkpoints"), settings.Checkpoint.Dir);
        Assert.Equal(1, settings.Checkpoint.EvalThreads);
        Assert.Equal((256L << 20, 4), (settings.Checkpoint.MaxSnapshotBytes, settings.Checkpoint.MaxPendingOffers));
        Assert.Equal((64L << 20, TimeSpan.FromHours(24)), (settings.Packages.MaxBytes, settings.Packages.Retention));
        Assert.Equal(Path.Combine("/srv/o", "packages"), settings.Packages.Dir);
    }

    [Fact]
    public void The_job_api_listens_on_loopback_with_a_generated_token_by_default()
    {
        var settings = OrchestratorSettings.Create(Shipped);
        Assert.Equal("127.0.0.1", settings.Api.Hostname);
        Assert.Equal("", settings.Api.Token);
        Assert.Equal(TimeSpan.FromSeconds(10), settings.Api.AskTimeout);
        Assert.Equal(1, settings.Worker.CpuDevices);
        Assert.Equal("auto", settings.Worker.Device);
    }

    [Theory]
    [InlineData("orchestrator.worker.cpu-devices = 0", "orchestrator.worker.cpu-devices")]
    [InlineData("orchestrator.worker.device = tpu", "orchestrator.worker.device")]
    [InlineData("orchestrator.api.port = 70000", "orchestrator.api.port")]
    [InlineData("orchestrator.api.token = short", "orchestrator.api.token")]
    [InlineData("orchestrator.coordinator.stop-timeout = 0s", "orchestrator.coordinator.stop-timeout")]
    [InlineData("orchestrator.data-dir = \"\"", "orchestrator.data-dir")]
    [InlineData("orchestrator.checkpoint.eval-threads = 0", "orchestrator.checkpoint.eval-threads")]
    [InlineData("orchestrator.membership.rejoin-without-coordinator-after = 0s", "orchestrator.membership.rejoin-without-coordinator-after")]
    [InlineData("orchestrator.membership.rejoin-without-coordinator-after = soon", "orchestrator.membership.rejoin-without-coordinator-after")]
    [InlineData("orchestrator.membership.rejoin-without-coordinator-after = -5s", "orchestrator.membership.rejoin-without-coordinator-after")]
    [InlineData("orchestrator.coordinator.stop-timeout = soon", "orchestrator.coordinator.stop-timeout")]
    [InlineData("orchestrator.worker.cpu-devices = abc", "orchestrator.worker.cpu-devices")]
    [InlineData("orchestrator.api.port = x", "orchestrator.api.port")]
    [InlineData("orchestrator.checkpoint.max-snapshot-bytes = 3 TiB", "orchestrator.checkpoint.max-snapshot-bytes")]
    [InlineData("orchestrator.checkpoint.max-pending-offers = 0", "orchestrator.checkpoint.max-pending-offers")]
    [InlineData("orchestrator.coordinator.max-queued-jobs = 0", "orchestrator.coordinator.max-queued-jobs")]
    [InlineData("orchestrator.coordinator.snapshot-every = 5", "orchestrator.coordinator.snapshot-every")]
    [InlineData("orchestrator.membership.stable-after = 0s", "orchestrator.membership.stable-after")]
    [InlineData("orchestrator.packages.max-bytes = 10", "orchestrator.packages.max-bytes")]
    [InlineData("orchestrator.packages.retention = soon", "orchestrator.packages.retention")]
    public void A_bad_setting_is_refused_with_its_path_named(string hocon, string path)
    {
        var config = ConfigurationFactory.ParseString(hocon).WithFallback(Shipped);
        var ex = Assert.Throws<ConfigurationException>(() => OrchestratorSettings.Create(config));
        Assert.Contains(path, ex.Message);
    }
}
