using Orchestrator.Collectives;

namespace Orchestrator.Collectives.Tests;

public class RingScheduleTests
{
    [Theory]
    [InlineData(2, 10, 3)]
    [InlineData(3, 1000, 64)]
    [InlineData(4, 3, 1)]
    [InlineData(4, 1001, 7)]
    public void What_a_rank_sends_after_the_first_segment_is_exactly_what_it_received(int size, int length, int chunk)
    {
        for (int rank = 0; rank < size; rank++)
        {
            var plan = RingSchedule.Create(length, size, rank, chunk);
            Assert.Equal(plan.Outgoing.Count - plan.FirstSegmentChunks, plan.Incoming.Count - plan.Incoming.Count(c => c.Step == 2 * size - 3));
            for (int k = plan.FirstSegmentChunks; k < plan.Outgoing.Count; k++)
            {
                var sent = plan.Outgoing[k];
                var received = plan.Incoming[k - plan.FirstSegmentChunks];
                Assert.Equal((received.Offset, received.Count, received.Step + 1), (sent.Offset, sent.Count, sent.Step));
            }
        }
    }

    [Theory]
    [InlineData(2, 10, 3)]
    [InlineData(3, 1000, 64)]
    [InlineData(4, 1001, 7)]
    public void Reduce_scatter_adds_every_element_n_minus_1_times_and_all_gather_copies_it_n_minus_1_times(int size, int length, int chunk)
    {
        var adds = new int[length];
        var copies = new int[length];
        for (int rank = 0; rank < size; rank++)
        {
            var plan = RingSchedule.Create(length, size, rank, chunk);
            foreach (var c in plan.Incoming)
                for (int i = c.Offset; i < c.Offset + c.Count; i++)
                    (plan.IsReduceStep(c.Step) ? adds : copies)[i]++;
        }
        Assert.All(adds, a => Assert.Equal(size - 1, a));
        Assert.All(copies, c => Assert.Equal(size - 1, c));
    }
}
