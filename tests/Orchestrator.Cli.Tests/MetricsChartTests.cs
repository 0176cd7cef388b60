using System.Buffers.Binary;
using Orchestrator.Cli.Commands;

namespace Orchestrator.Cli.Tests;

public sealed class MetricsChartTests
{
    [Fact]
    public void A_history_is_drawn_as_one_png_of_four_panels_and_an_empty_one_still_draws()
    {
        var folder = Directory.CreateTempSubdirectory("orch-chart-").FullName;
        try
        {
            var points = Enumerable.Range(1, 50).Select(s => new ChartPoint(s * 10, 2.0 / s,
                [(0, 900.0 + s, 0.1), (1, 880.0 + s, 0.12)])).ToList();
            List<(long, Dictionary<string, double>)> evaluations = [(100, new() { ["accuracy"] = 0.7, ["loss"] = 0.8 }), (500, new() { ["accuracy"] = 0.8, ["loss"] = 0.6 })];
            var path = Path.Combine(folder, "job.png");
            MetricsChart.Save("job-1", points, evaluations, path);
            var (width, height) = PngSize(path);
            Assert.Equal((MetricsChart.Width, 4 * MetricsChart.PanelHeight), (width, height));
            Assert.True(new FileInfo(path).Length > 10_000, $"{new FileInfo(path).Length} bytes: too small to hold four charts");

            var empty = Path.Combine(folder, "empty.png");
            MetricsChart.Save("job-2", [], [], empty);
            Assert.Equal((MetricsChart.Width, 4 * MetricsChart.PanelHeight), PngSize(empty));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    /// <summary>The width and height in a PNG's IHDR chunk, after the 8-byte signature.</summary>
    private static (int, int) PngSize(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A], bytes[..8]);
        Assert.Equal("IHDR"u8.ToArray(), bytes[12..16]);
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }
}
