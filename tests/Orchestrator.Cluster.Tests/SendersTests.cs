using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Membership;
using Orchestrator.Cluster.Worker;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Tests;

public sealed class SendersTests() : TestKit(ConfigurationFactory.ParseString("akka.coordinated-shutdown.exit-clr = off")
    .WithFallback(OrchestratorSettings.DefaultConfig()))
{
    private static readonly string[] Peers =
        ["akka.ssl.tcp://orchestrator@10.0.0.1:4053", "akka.ssl.tcp://orchestrator@10.0.0.2:4053", "akka.ssl.tcp://orchestrator@10.0.0.3:4053"];

    [Fact]
    public void A_ring_message_counts_only_from_the_node_of_the_rank_it_names()
    {
        var fromRank1 = Address.Parse(Peers[1]);
        Assert.True(Senders.IsFromRank(new RingCredit(1, 7, FromRank: 1, Count: 1), fromRank1, Peers));
        Assert.True(Senders.IsFromRank(new RingChunk(1, 7, 1, 0, new byte[8], 0, 8), fromRank1, Peers));
        // Another member claiming rank 1, a rank outside the ring, a node outside the ring.
        Assert.False(Senders.IsFromRank(new RingCredit(1, 7, FromRank: 1, Count: 1), Address.Parse(Peers[2]), Peers));
        Assert.False(Senders.IsFromRank(new RingAbort(1, 7, 42, 42, "x", [], true), fromRank1, Peers));
        Assert.False(Senders.IsFromRank(new RingAbort(1, 7, -1, 0, "x", [], true), fromRank1, Peers));
        Assert.False(Senders.IsFromRank(new RingCredit(1, 7, 1, 1), Address.Parse("akka.ssl.tcp://orchestrator@10.9.9.9:4053"), Peers));
        Assert.False(Senders.IsFromRank(new RingCredit(1, 7, 0, 1), fromRank1, ["not an address", Peers[1]]));
    }

    [Fact]
    public void A_message_that_names_no_sender_is_not_local_and_an_actor_of_this_node_is()
    {
        Assert.True(Senders.IsLocal(TestActor));
        Assert.False(Senders.IsLocal(ActorRefs.NoSender ?? Sys.DeadLetters));
        Assert.False(Senders.IsLocal(Sys.DeadLetters));
        Assert.False(Senders.FromRole(Sys, Sys.DeadLetters, "coordinator"));
        Assert.Null(Senders.ParseNode("not an address"));
        Assert.Null(Senders.ParseNode(null));
    }

    [Fact]
    public void A_worker_agent_refuses_orders_that_come_from_no_coordinator()
    {
        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        var dataDir = Directory.CreateTempSubdirectory("senders-").FullName;
        var agent = Sys.ActorOf(WorkerAgent.Props("node-a", [new ClusterProtocol.DeviceInfo("cpu", 0, null)], dataDir, settings.Worker, settings.Packages));
        // From another node without a sender (arrives from dead letters): refused before anything is started or answered.
        EventFilter.Warning(contains: "refused StartTraining").ExpectOne(() =>
            agent.Tell(new StartTraining("job-1", "{}", 1, 0, 1, ["node-a"]), Sys.DeadLetters));
        EventFilter.Warning(contains: "refused RequestInventory").ExpectOne(() =>
            agent.Tell(ClusterProtocol.RequestInventory.Instance, Sys.DeadLetters));
        // From this node (the coordinator role's own actors, here the test): answered.
        agent.Tell(ClusterProtocol.RequestInventory.Instance, TestActor);
        Assert.Equal("node-a", ExpectMsg<ClusterProtocol.WorkerInventory>().Node);
        Assert.False(Directory.Exists(Path.Combine(dataDir, "jobs")));
    }
}
