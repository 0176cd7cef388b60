using Orchestrator.Collectives;
using Orchestrator.Core.Protocol;

namespace Orchestrator.Collectives.Tests;

/// <summary>Numbers from the network are checked before the engine acts on them: senders, ranks, counts, how far ahead.</summary>
public class RingAdmissionTests
{
    private static CollectiveOptions Options(int deadlineMs = 5000, int window = 16) =>
        new(4 * 1024 * 1024, 400, window, TimeSpan.FromMilliseconds(deadlineMs), TimeSpan.FromMilliseconds(300));

    private static float[][] Data(int ranks, int length) =>
        Enumerable.Range(0, ranks).Select(r => Enumerable.Range(0, length).Select(i => (float)(r + i % 7)).ToArray()).ToArray();

    [Fact]
    public async Task An_abort_naming_rank_42_is_refused_and_the_collective_completes()
    {
        var ring = new LoopbackRing(3, Options());
        ring.Engines[1].Deliver(new RingAbort(1, 1, 0, 42, "rank 42 says so", [1], true));   // origin outside the ring
        ring.Engines[1].Deliver(new RingAbort(1, 1, 0, 0, "suspect 42", [42], true));        // suspect outside the ring
        ring.Engines[1].Deliver(new RingAbort(1, 1, 1, 1, "from itself", [0], true));        // not from a neighbour
        var data = Data(3, 3_000);
        var outcomes = await Task.WhenAll(ring.RunAll(data)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(outcomes, e => Assert.Null(e));
        Assert.Equal(3, ring.Engines[1].Refused);
    }

    [Fact]
    public async Task Credits_from_the_wrong_rank_do_not_keep_a_stalled_collective_alive()
    {
        // Rank 2 never takes part. Rank 0's right-hand neighbour is rank 1; a credit "from rank 2" every
        // 100 ms must not count as progress, so the 1 s deadline still fires.
        var ring = new LoopbackRing(3, Options(deadlineMs: 1000));
        using var stop = new CancellationTokenSource();
        var forger = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                ring.Engines[0].Deliver(new RingCredit(1, 1, 2, 1));
                await Task.Delay(100);
            }
        });
        var started = DateTime.UtcNow;
        var outcomes = await Task.WhenAll(ring.RunAll(Data(3, 3_000), ranks: [0, 1])).WaitAsync(TimeSpan.FromSeconds(15));
        stop.Cancel();
        await forger;
        Assert.All(outcomes, e => Assert.IsType<CollectiveFailedException>(e));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(6), $"the deadline fired only after {DateTime.UtcNow - started}");
        Assert.True(ring.Engines[0].Refused > 0);
    }

    [Fact]
    public void Messages_for_later_collectives_are_kept_within_a_bound()
    {
        // A neighbour may be as many collectives ahead as may be in flight (2 here), with at most a window of chunks in each
        // (it has had no credit for them): the first four sequence numbers of collectives 1 and 2 are kept, nothing else.
        var ring = new LoopbackRing(2, Options(window: 4));
        for (int i = 0; i < 10_000; i++) ring.Engines[1].Deliver(new RingChunk(1, 1 + i % 2, 0, i / 2 % 8, RingBuffers.Rent(400), 400));
        Assert.Equal(2 * 4, ring.Engines[1].EarlyCount);
        ring.Engines[1].Deliver(new RingChunk(1, 3, 0, 0, RingBuffers.Rent(400), 400));   // no neighbour can be three collectives ahead
        ring.Engines[1].Deliver(new RingCredit(1, 1, 0, 1));                              // nor credit a chunk never sent
        Assert.Equal(2 * 4, ring.Engines[1].EarlyCount);
        Assert.Equal(10_000 - 2 * 4 + 2, ring.Engines[1].StaleDropped);
    }

    [Theory]
    [InlineData(0, 1, 5, "not the right-hand neighbour")]    // rank 1 of 3: left 0, right 2; a credit must come from 2
    [InlineData(2, 1, 0, "outside [1, 16]")]
    [InlineData(2, 1, 17, "outside [1, 16]")]
    public void Credits_are_admitted_only_from_the_right_hand_neighbour_and_within_a_window(int from, int rank, int count, string why)
    {
        var ring = new RingTopology(1, rank, ["a", "b", "c"]);
        Assert.Contains(why, RingAdmission.Refusal(new RingCredit(1, 1, from, count), ring, 16));
        Assert.Null(RingAdmission.Refusal(new RingCredit(1, 1, 2, 4), ring, 16));
    }
}
