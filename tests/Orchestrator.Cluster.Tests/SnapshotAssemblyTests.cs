using Orchestrator.Cluster.Checkpoint;
using static Orchestrator.Core.Protocol.CheckpointProtocol;

namespace Orchestrator.Cluster.Tests;

/// <summary>What an offered snapshot may claim, and which chunks of it are taken.</summary>
public sealed class SnapshotAssemblyTests
{
    private static SnapshotOffer Offer(long modelBytes, long optimizerBytes = 0) =>
        new("t1", "job-1", "{}", 1, 10, 0, 10, 32, "digest", modelBytes, optimizerBytes, new string('0', 64));

    [Fact]
    public void An_offer_claiming_2_GiB_is_refused_before_anything_is_allocated()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<InvalidDataException>(() => new SnapshotAssembly(Offer(2L << 30), maxBytes: 256L << 20));
        Assert.Contains("a snapshot of 2147483648 bytes is refused: the limit is 268435456 bytes", ex.Message);
        Assert.Throws<InvalidDataException>(() => new SnapshotAssembly(Offer(-1, 10), maxBytes: 256L << 20));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
    }

    [Fact]
    public void Overlapping_repeated_and_misplaced_chunks_are_refused_and_never_counted()
    {
        int chunk = SnapshotTransfer.ChunkBytes;
        var assembly = new SnapshotAssembly(Offer(2 * chunk + 100), maxBytes: 1 << 20);
        Assert.True(assembly.Add(new SnapshotChunk("t1", 0, new byte[chunk])));
        Assert.False(assembly.Add(new SnapshotChunk("t1", 0, new byte[chunk])));             // the same again
        Assert.False(assembly.Add(new SnapshotChunk("t1", chunk / 2, new byte[chunk])));     // overlaps the first
        Assert.False(assembly.Add(new SnapshotChunk("t1", chunk, new byte[chunk + 100])));   // longer than a chunk
        Assert.False(assembly.Add(new SnapshotChunk("t1", 2 * chunk, new byte[chunk])));     // past the end
        Assert.False(assembly.Add(new SnapshotChunk("t1", -chunk, new byte[chunk])));
        Assert.False(assembly.IsComplete);
        Assert.True(assembly.Add(new SnapshotChunk("t1", chunk, new byte[chunk])));
        Assert.True(assembly.Add(new SnapshotChunk("t1", 2 * chunk, new byte[100])));
        Assert.True(assembly.IsComplete);
    }
}
