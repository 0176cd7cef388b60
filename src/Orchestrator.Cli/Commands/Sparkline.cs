namespace Orchestrator.Cli.Commands;

/// <summary>A curve in one line of block characters (▁ lowest to █ highest), for <c>watch</c>'s loss beside its progress bar.</summary>
public static class Sparkline
{
    private const string Blocks = "▁▂▃▄▅▆▇█";

    /// <summary>
    /// The last values, at most <paramref name="width"/> characters: more values than that are averaged in equal groups
    /// (the oldest group may be smaller). Values that are not finite are left out; a flat curve is a row of the lowest block.
    /// </summary>
    public static string Of(IReadOnlyList<double> values, int width)
    {
        var finite = values.Where(double.IsFinite).ToList();
        if (finite.Count == 0 || width <= 0) return "";
        var group = (finite.Count + width - 1) / width;
        var points = new List<double>();
        for (var end = finite.Count; end > 0; end -= group)
            points.Add(finite.Skip(Math.Max(0, end - group)).Take(end - Math.Max(0, end - group)).Average());
        points.Reverse();
        double min = points.Min(), max = points.Max();
        return string.Concat(points.Select(v => max - min < 1e-12 ? Blocks[0] : Blocks[(int)Math.Round((v - min) / (max - min) * (Blocks.Length - 1))]));
    }
}
