using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Orchestrator.Cluster.Worker;
using Orchestrator.Core.Protocol;
using Orchestrator.Core.Settings;
using static Orchestrator.Core.Protocol.CheckpointProtocol;
using static Orchestrator.Core.Protocol.TrainingProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>
/// The trainer alone, with probes standing in for its agent (its parent), its checkpoint store and a
/// ring neighbour on a second actor system: real training (the mlp on Fashion-MNIST, a few steps), the
/// messages it sends and what it does with the answers, or without them.
/// </summary>
public sealed class TrainerSpec() : TestKit(Config)
{
    private static readonly Config Config = ConfigurationFactory.ParseString("""
        akka.remote.dot-netty.tcp.port = 0
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.coordinated-shutdown.exit-clr = off
        akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
        orchestrator.worker.collective-deadline = 3s
        orchestrator.worker.threads = 1
        """).WithFallback(OrchestratorSettings.DefaultConfig());

    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("trainer-spec-").FullName;

    private static string Job(int maxSteps, int everySteps, int workers = 1) => $$"""
        { "name": "tr", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": {{workers}}, "batchSizePerDevice": 32,
          "maxSteps": {{maxSteps}}, "checkpoint": { "everySteps": {{everySteps}} } }
        """;

    private string Node => Akka.Cluster.Cluster.Get(Sys).SelfAddress.ToString();

    private IActorRef StartTrainer(Agent agent, StartTraining start)
    {
        var settings = OrchestratorSettings.Create(Sys.Settings.Config);
        var spec = Core.Jobs.JobSpecParser.Parse(start.SpecJson);
        var packages = new PackageSource(new Training.Workloads.PackageCache(Path.Combine(_dir, "cache")), "akka://nowhere/user/none", settings.Packages.MaxBytes);
        return agent.Probe.ChildActorOf(Trainer.Props(start, spec, start.Peers[start.Rank], Path.Combine(_dir, $"out-g{start.Generation}"), settings.Worker, packages),
            Trainer.ActorName(start.JobId, start.Generation));
    }

    /// <summary>The agent's probe, with everything it has heard kept, so that a test waits for a state of the whole (the job log's lines arrive in batches once a second, in any order with the other messages).</summary>
    private sealed class Agent(TestProbe probe)
    {
        private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
        private readonly List<object> _heard = [];

        public TestProbe Probe => probe;
        public IActorRef Ref => probe.Ref;
        public IEnumerable<string> Lines => _heard.OfType<JobLogBatch>().SelectMany(b => b.Lines).Select(l => $"{l.Level} {l.Text}");
        public T? Last<T>() where T : class => _heard.OfType<T>().LastOrDefault();

        /// <summary>Takes messages until <paramref name="done"/> holds over all heard so far; a failure or completion that the test did not wait for ends it.</summary>
        public async Task Until(Func<Agent, bool> done, string what)
        {
            var deadline = DateTime.UtcNow + Wait;
            while (!done(this))
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new Xunit.Sdk.XunitException($"no {what} within {Wait}; heard:\n{Describe()}");
                var message = await probe.ReceiveOneAsync(left);
                if (message is not null) _heard.Add(message);
            }
        }

        public Task UntilLine(string text) => Until(a => a.Lines.Any(l => l.Contains(text, StringComparison.Ordinal)), $"log line with '{text}'");

        public Task<T> UntilA<T>() where T : class => Until(a => a.Last<T>() is not null, typeof(T).Name).ContinueWith(_ => Last<T>()!);

        public string Describe() => string.Join("\n", _heard.Select(m => m is JobLogBatch b ? string.Join("\n", b.Lines.Select(l => $"  log: {l.Level} {l.Text}")) : $"  {m}"));
    }

    /// <summary>The store's side of one upload: takes the offer's chunks as they come (acknowledging each) and returns them whole, with the sender.</summary>
    private static async Task<(SnapshotOffer Offer, byte[] Bytes, IActorRef Sender)> Receive(TestProbe store, SnapshotOffer offer)
    {
        var bytes = new byte[offer.ModelLength + offer.OptimizerLength];
        long received = 0;
        IActorRef sender = ActorRefs.Nobody;
        while (received < bytes.Length)
        {
            var chunk = await store.ExpectMsgAsync<SnapshotChunk>(Wait);
            Assert.Equal(offer.TransferId, chunk.TransferId);
            chunk.Data.CopyTo(bytes, chunk.Offset);
            received += chunk.Data.Length;
            sender = store.LastSender;
            sender.Tell(new SnapshotChunkAck(chunk.TransferId, chunk.Offset));
        }
        return (offer, bytes, sender);
    }

    [Fact]
    public async Task Rank_0_sends_checkpoints_one_at_a_time_keeps_only_the_newest_waiting_and_completes_once_the_last_is_answered()
    {
        var agent = new Agent(CreateTestProbe());
        var store = CreateTestProbe();
        var trainer = StartTrainer(agent, new StartTraining("job-a", Job(maxSteps: 6, everySteps: 2), 1, 0, 1, [Node], store.Ref.Path.ToString()));
        agent.Probe.Watch(trainer);
        await agent.UntilA<TrainingStarted>();
        trainer.Tell(new BeginTraining("job-a", 1, []), agent.Ref);

        // Step 2's snapshot goes out; while the store keeps it waiting, step 4's waits and step 6's replaces it.
        var first = await store.ExpectMsgAsync<SnapshotOffer>(Wait);
        Assert.Equal(2, first.Step);
        await agent.UntilLine("memory:");   // the compute thread has ended
        Assert.Contains(agent.Lines, l => l.Contains("checkpoint at step 4 skipped: the one before it is still being sent", StringComparison.Ordinal));
        // A second with the store silent: the trainer must not report the job complete (its last checkpoint is not stored).
        var meanwhile = new List<object>();
        await foreach (var m in agent.Probe.ReceiveWhileAsync(TimeSpan.FromSeconds(1), m => m)) meanwhile.Add(m);
        Assert.DoesNotContain(meanwhile, m => m is TrainingCompleted or Terminated);

        var (_, _, sender) = await Receive(store, first);
        sender.Tell(new TransferDone(first.TransferId, true, "/stored/2"));
        var last = await store.ExpectMsgAsync<SnapshotOffer>(Wait);
        Assert.Equal(6, last.Step);   // not 4
        var (_, bytes, lastSender) = await Receive(store, last);
        Assert.Equal(last.Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)));
        lastSender.Tell(new TransferDone(last.TransferId, false, "disk full"));   // refused: a log line, and the job still completes

        Assert.Equal(6, (await agent.UntilA<TrainingCompleted>()).Steps);
        Assert.Contains(agent.Lines, l => l == "warning checkpoint at step 6 not stored: disk full");
        await agent.UntilA<Terminated>();
    }

    [Fact]
    public async Task A_resumed_trainer_fetches_its_checkpoint_from_the_store_and_fails_with_the_reason_when_it_is_bad()
    {
        // A real snapshot of step 4, as rank 0 uploads it.
        var agent = new Agent(CreateTestProbe());
        var store = CreateTestProbe();
        var trainer = StartTrainer(agent, new StartTraining("job-b", Job(maxSteps: 4, everySteps: 4), 1, 0, 1, [Node], store.Ref.Path.ToString()));
        await agent.UntilA<TrainingStarted>();
        trainer.Tell(new BeginTraining("job-b", 1, []), agent.Ref);
        var (offer, bytes, sender) = await Receive(store, await store.ExpectMsgAsync<SnapshotOffer>(Wait));
        sender.Tell(new TransferDone(offer.TransferId, true, "/stored/4"));
        await agent.UntilA<TrainingCompleted>();

        // A later generation resumes from it: asks the store, takes the offer and chunks, acknowledges each, and trains on from step 4.
        async Task<(Agent, IActorRef)> Resume(int generation, Func<byte[], byte[]> tamper, string? refusal = null)
        {
            var resumedAgent = new Agent(CreateTestProbe());
            var resumed = StartTrainer(resumedAgent, new StartTraining("job-b", Job(maxSteps: 6, everySteps: 100), generation, 0, 1, [Node],
                store.Ref.Path.ToString(), ResumeStep: 4));
            var fetch = await store.ExpectMsgAsync<FetchCheckpoint>(Wait);
            Assert.Equal(("job-b", 4L), (fetch.JobId, fetch.Step));
            var downloader = store.LastSender;
            if (refusal is not null)
            {
                downloader.Tell(new TransferDone(fetch.TransferId, false, refusal), store.Ref);
                return (resumedAgent, resumed);
            }
            downloader.Tell(offer with { TransferId = fetch.TransferId }, store.Ref);
            var sent = tamper(bytes);
            for (int at = 0; at < sent.Length; at += SnapshotTransferChunk)
            {
                downloader.Tell(new SnapshotChunk(fetch.TransferId, at, sent.AsSpan(at, Math.Min(SnapshotTransferChunk, sent.Length - at)).ToArray()), store.Ref);
                Assert.Equal(at, (await store.ExpectMsgAsync<SnapshotChunkAck>(Wait)).Offset);
            }
            Assert.True((await store.ExpectMsgAsync<TransferDone>(Wait)).Ok);
            return (resumedAgent, resumed);
        }

        var (goodAgent, good) = await Resume(2, b => b);
        await goodAgent.UntilA<TrainingStarted>();
        await goodAgent.UntilLine("resuming from the checkpoint at step 4; ready");
        good.Tell(new BeginTraining("job-b", 2, []), goodAgent.Ref);
        var (final, _, finalSender) = await Receive(store, await store.ExpectMsgAsync<SnapshotOffer>(Wait));   // a run's end is always a checkpoint
        Assert.Equal((6L, 2), (final.Step, final.Generation));
        finalSender.Tell(new TransferDone(final.TransferId, true, "/stored/6"));
        Assert.Equal(6, (await goodAgent.UntilA<TrainingCompleted>()).Steps);

        var (corruptAgent, _) = await Resume(3, b => { var c = (byte[])b.Clone(); c[^1] ^= 1; return c; });
        var failed = await corruptAgent.UntilA<TrainingFailed>();
        Assert.Equal("checkpoint at step 4: snapshot bytes do not match the SHA-256 of the offer", failed.Error);
        Assert.False(failed.Recoverable);

        var (refusedAgent, _) = await Resume(4, b => b, refusal: "checkpoint at step 4 of job job-b is not valid: truncated");
        Assert.Equal("checkpoint at step 4 of job job-b is not valid: truncated", (await refusedAgent.UntilA<TrainingFailed>()).Error);
    }

    private const int SnapshotTransferChunk = Checkpoint.SnapshotTransfer.ChunkBytes;

    [Fact]
    public async Task A_trainer_sends_its_chunks_to_its_neighbour_refuses_ring_messages_from_elsewhere_and_fails_recoverably_when_the_neighbour_is_silent()
    {
        // Rank 1 lives on a second actor system: an actor at the trainer's path there hands what arrives to a probe.
        var other = ActorSystem.Create("other", Config);
        try
        {
            var neighbour = CreateTestProbe(other);
            other.ActorOf(Props.Create(() => new Forwarder(neighbour.Ref, Trainer.ActorName("job-c", 1))), WorkerAgent.Name);
            var otherNode = Akka.Cluster.Cluster.Get(other).SelfAddress.ToString();

            var agent = new Agent(CreateTestProbe());
            var trainer = StartTrainer(agent, new StartTraining("job-c", Job(maxSteps: 3, everySteps: 100, workers: 2), 1, 0, 2, [Node, otherNode]));
            agent.Probe.Watch(trainer);
            await agent.UntilA<TrainingStarted>();

            // A chunk claiming to be rank 1's, from an actor on this node (not rank 1's), is refused with a line in the job's log.
            trainer.Tell(RingChunk.Frame(1, 0, 1, 0, new byte[16]), TestActor);
            await agent.UntilLine("refused a RingChunk");

            trainer.Tell(new BeginTraining("job-c", 1, []), agent.Ref);
            var chunk = await neighbour.FishForMessageAsync<RingChunk>(m => true, Wait);
            Assert.Equal((1, 1L, 0), (chunk.Generation, chunk.Collective, chunk.FromRank));   // the ring's first collective, from rank 0
            Assert.True(chunk.Length > 0);

            // Rank 1 never answers: the collective's deadline (3 s here) ends training, as a failure the job recovers from.
            var failed = await agent.UntilA<TrainingFailed>();
            Assert.True(failed.Recoverable, failed.Error);
            Assert.Contains("rank 1", failed.Error);
            await agent.UntilA<Terminated>();
        }
        finally { await other.Terminate(); }
    }

    /// <summary>Stands in for the worker agent on the other system: its one child, named as rank 1's trainer, forwards to the probe.</summary>
    private sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef probe, string childName)
        {
            if (childName.Length > 0) Context.ActorOf(Props.Create(() => new Forwarder(probe, "")), childName);
            ReceiveAny(m => probe.Forward(m));
        }
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }
}
