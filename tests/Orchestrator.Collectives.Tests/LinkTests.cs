using Orchestrator.Collectives;
using Orchestrator.Collectives.Links;

namespace Orchestrator.Collectives.Tests;

/// <summary>
/// The engine's core tests again, over the real links (TCP sockets, Akka Remote) instead of memory. Alone in
/// their collection: their actor systems and socket threads would otherwise take the CPU that the in-memory
/// tests' short deadlines count on.
/// </summary>
[Collection(RealLinks.Name)]
public sealed class LinkTests
{
    private static CollectiveOptions Options(int bucketBytes, int chunkBytes, int deadlineMs = 10_000) =>
        new(bucketBytes, chunkBytes, 8, TimeSpan.FromMilliseconds(deadlineMs), TimeSpan.FromMilliseconds(300));

    [Theory]
    [InlineData("tcp", 2, 1001, 400, 12)]
    [InlineData("tcp", 3, 100_003, 40_000, 1_000)]
    [InlineData("tcp", 4, 250_001, 1_000_000, 262_144)]
    [InlineData("akka", 2, 1001, 400, 12)]
    [InlineData("akka", 3, 100_003, 40_000, 1_000)]
    [InlineData("akka", 4, 250_001, 1_000_000, 65_536)]
    public async Task Sums_are_exact_over_the_link(string transport, int ranks, int length, int bucketBytes, int chunkBytes)
    {
        using var ring = LinkRing.Create(transport, ranks, Options(bucketBytes, chunkBytes));
        var random = new Random(length);
        var data = Enumerable.Range(0, ranks).Select(_ => Enumerable.Range(0, length).Select(_ => (float)random.Next(-1000, 1001)).ToArray()).ToArray();
        var expected = Enumerable.Range(0, length).Select(i => data.Sum(d => d[i])).ToArray();
        for (int repeat = 0; repeat < 2; repeat++)   // back to back: the second reuses connections and pools
        {
            var outcomes = await Task.WhenAll(ring.RunAll(data)).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.All(outcomes, e => Assert.Null(e));
            for (int r = 0; r < ranks; r++) Assert.Equal(expected, data[r]);
            for (int i = 0; i < length; i++) expected[i] *= ranks;
        }
    }

    [Theory]
    [InlineData("tcp", 2, WireFormat.BFloat16)]
    [InlineData("tcp", 3, WireFormat.Float16)]
    [InlineData("akka", 2, WireFormat.BFloat16)]
    [InlineData("akka", 3, WireFormat.Float16)]
    public async Task Sixteen_bit_values_give_RingArithmetic_s_bytes_over_the_link(string transport, int ranks, WireFormat format)
    {
        const int length = 200_003;
        var options = Options(400_000, transport == "akka" ? AkkaRingLink.ChunkBytes : 65_536) with { Format = format };
        using var ring = LinkRing.Create(transport, ranks, options);
        var random = new Random(ranks);
        var data = Enumerable.Range(0, ranks).Select(_ => Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray()).ToArray();
        for (int repeat = 0; repeat < 2; repeat++)
        {
            var expected = new float[length];
            RingArithmetic.Reduce(data.Select(d => (float[])d.Clone()).ToArray(), 100_000, format, expected);
            var outcomes = await Task.WhenAll(ring.RunAll(data)).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.All(outcomes, e => Assert.Null(e));
            for (int r = 0; r < ranks; r++) Assert.Equal(expected, data[r]);
        }
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("akka")]
    public async Task A_participant_that_never_answers_is_named_by_the_others(string transport)
    {
        using var ring = LinkRing.Create(transport, 3, Options(4096, 1024, deadlineMs: 1500));
        var data = Enumerable.Range(0, 3).Select(_ => new float[5000]).ToArray();
        var outcomes = await Task.WhenAll(ring.RunAll(data, ranks: [0, 1])).WaitAsync(TimeSpan.FromSeconds(30));
        foreach (var outcome in outcomes)
        {
            var failed = Assert.IsType<CollectiveFailedException>(outcome);
            Assert.Contains(2, failed.MissingRanks);
            Assert.Contains("rank 2 (node-2)".Replace("node-2", ring.Engines[2].Ring.Nodes[2]), failed.Message);
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RealLinks
{
    public const string Name = "real links";
}
