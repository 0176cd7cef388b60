using Orchestrator.Cli.Commands;

namespace Orchestrator.Cli.Tests;

public sealed class SparklineTests
{
    [Fact]
    public void A_falling_loss_is_drawn_from_the_highest_block_to_the_lowest()
    {
        Assert.Equal("█▆▄▂▁", Sparkline.Of([2.0, 1.5, 1.0, 0.5, 0.25], 10));
    }

    [Fact]
    public void More_values_than_the_width_are_averaged_in_groups_and_the_newest_value_is_last()
    {
        var values = Enumerable.Range(0, 100).Select(i => (double)i).ToList();
        var line = Sparkline.Of(values, 20);
        Assert.Equal(20, line.Length);
        Assert.Equal('▁', line[0]);
        Assert.Equal('█', line[^1]);
    }

    [Fact]
    public void Nothing_finite_draws_nothing_and_a_flat_curve_draws_the_lowest_block()
    {
        Assert.Equal("", Sparkline.Of([double.NaN, double.PositiveInfinity], 10));
        Assert.Equal("", Sparkline.Of([], 10));
        Assert.Equal("▁▁▁", Sparkline.Of([0.7, 0.7, double.NaN, 0.7], 10));
    }
}
