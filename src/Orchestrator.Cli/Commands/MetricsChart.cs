using System.Text.Json;
using ScottPlot;

namespace Orchestrator.Cli.Commands;

/// <summary>One reported step, as the chart needs it.</summary>
public sealed record ChartPoint(long Step, double Loss, IReadOnlyList<(int Rank, double SamplesPerSecond, double CommunicationShare)> Workers);

/// <summary>
/// A job's metrics history as one PNG, drawn with ScottPlot: the training loss against step, the held-out metrics at
/// each evaluated checkpoint, and each worker's samples/s and communication share against step (one line per rank).
/// </summary>
public static class MetricsChart
{
    public const int Width = 1000, PanelHeight = 320;

    /// <summary>The points and evaluations of <c>GET /api/v1/jobs/{id}/metrics</c> pages (or <c>metrics --json</c>).</summary>
    public static (List<ChartPoint> Points, List<(long Step, Dictionary<string, double> Metrics)> Evaluations) FromJson(
        IEnumerable<JsonElement> points, IEnumerable<JsonElement> evaluations) =>
        (points.Select(p => new ChartPoint(p.GetProperty("step").GetInt64(), Number(p, "loss"),
                p.GetProperty("workers").EnumerateArray().Select(w => (w.GetProperty("rank").GetInt32(), Number(w, "samplesPerSecond"), Number(w, "communicationShare"))).ToList()))
            .ToList(),
         evaluations.Select(e => (e.GetProperty("step").GetInt64(),
                e.GetProperty("metrics").EnumerateObject().Where(m => m.Value.ValueKind == JsonValueKind.Number).ToDictionary(m => m.Name, m => m.Value.GetDouble())))
            .ToList());

    private static double Number(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;

    /// <summary>Draws the chart into <paramref name="path"/> (PNG); a panel without data says so instead of drawing nothing.</summary>
    public static void Save(string title, IReadOnlyList<ChartPoint> points, IReadOnlyList<(long Step, Dictionary<string, double> Metrics)> evaluations, string path)
    {
        var chart = new Multiplot();
        chart.AddPlots(4);
        var (loss, heldOut, throughput, communication) = (chart.GetPlot(0), chart.GetPlot(1), chart.GetPlot(2), chart.GetPlot(3));

        Line(loss, points.Select(p => (p.Step, p.Loss)), "training loss");
        loss.Title($"{title}: training loss");

        foreach (var name in evaluations.SelectMany(e => e.Metrics.Keys).Distinct().Order(StringComparer.Ordinal))
            Line(heldOut, evaluations.Where(e => e.Metrics.ContainsKey(name)).Select(e => (e.Step, e.Metrics[name])), $"held-out {name}", markers: true);
        heldOut.Title("held-out metrics at each checkpoint");

        foreach (var rank in points.SelectMany(p => p.Workers.Select(w => w.Rank)).Distinct().Order())
        {
            var worker = points.Select(p => (p.Step, Stat: p.Workers.FirstOrDefault(w => w.Rank == rank))).Where(x => x.Stat != default).ToList();
            Line(throughput, worker.Select(x => (x.Step, x.Stat.SamplesPerSecond)), $"rank {rank}");
            Line(communication, worker.Select(x => (x.Step, x.Stat.CommunicationShare)), $"rank {rank}");
        }
        throughput.Title("samples/s per worker");
        communication.Title("communication share per worker");

        foreach (var plot in chart.GetPlots())
        {
            plot.XLabel("step");
            if (plot.GetPlottables().Any()) plot.ShowLegend(Alignment.UpperRight);
            else plot.Add.Annotation("no data yet");
        }
        chart.SavePng(path, Width, 4 * PanelHeight);
    }

    private static void Line(Plot plot, IEnumerable<(long Step, double Value)> data, string label, bool markers = false)
    {
        var finite = data.Where(d => double.IsFinite(d.Value)).ToList();
        if (finite.Count == 0) return;
        var line = plot.Add.Scatter(finite.Select(d => (double)d.Step).ToArray(), finite.Select(d => d.Value).ToArray());
        line.LegendText = label;
        line.MarkerSize = markers ? 6 : 0;
    }
}
