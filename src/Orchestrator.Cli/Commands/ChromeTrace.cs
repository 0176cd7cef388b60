using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Cli.Commands;

/// <summary>
/// A job's step trace (the job API's <c>GET /api/v1/jobs/{id}/trace</c>) as a Chrome trace: the JSON object format that
/// chrome://tracing and Perfetto open. One process per worker (pid = rank, named with its node), one thread (its compute
/// thread), a complete event ("X") per span, so every span is closed by construction; a viewer nests the spans of a
/// step (forward, backward, gather, all-reduce with its buckets inside, scatter, optimizer, checkpoint capture) by time.
/// Times are each worker's own clock, in microseconds.
/// </summary>
public static class ChromeTrace
{
    public static JsonObject Build(JsonElement trace)
    {
        var events = new JsonArray();
        foreach (var rank in trace.GetProperty("ranks").EnumerateArray())
        {
            var pid = rank.GetProperty("rank").GetInt32();
            var node = rank.GetProperty("node").GetString() ?? "";
            var host = node.Contains('@') ? node[(node.IndexOf('@') + 1)..] : node;
            events.Add(new JsonObject { ["name"] = "process_name", ["ph"] = "M", ["pid"] = pid, ["tid"] = 0, ["args"] = new JsonObject { ["name"] = $"rank {pid} ({host})" } });
            events.Add(new JsonObject { ["name"] = "process_sort_index", ["ph"] = "M", ["pid"] = pid, ["tid"] = 0, ["args"] = new JsonObject { ["sort_index"] = pid } });
            events.Add(new JsonObject { ["name"] = "thread_name", ["ph"] = "M", ["pid"] = pid, ["tid"] = 0, ["args"] = new JsonObject { ["name"] = "compute" } });
        }
        // Longer spans first at equal start, so that a viewer that reads in order sees the parent before its children.
        var spans = trace.GetProperty("spans").EnumerateArray()
            .OrderBy(s => s.GetProperty("rank").GetInt32()).ThenBy(s => s.GetProperty("startUs").GetInt64()).ThenByDescending(s => s.GetProperty("durationUs").GetInt64());
        foreach (var span in spans)
        {
            var name = span.GetProperty("name").GetString() ?? "";
            var args = new JsonObject { ["step"] = span.GetProperty("step").GetInt64() };
            if (span.GetProperty("bytes").GetInt64() is var bytes and >= 0) args["bytes"] = bytes;
            events.Add(new JsonObject
            {
                ["name"] = name,
                ["cat"] = name == "step" ? "step" : name.StartsWith("all-reduce", StringComparison.Ordinal) ? "communication" : "compute",
                ["ph"] = "X",
                ["pid"] = span.GetProperty("rank").GetInt32(),
                ["tid"] = 0,
                ["ts"] = span.GetProperty("startUs").GetInt64(),
                ["dur"] = span.GetProperty("durationUs").GetInt64(),
                ["args"] = args,
            });
        }
        return new JsonObject
        {
            ["traceEvents"] = events,
            ["displayTimeUnit"] = "ms",
            ["otherData"] = new JsonObject
            {
                ["job"] = trace.GetProperty("id").GetString(),
                ["steps"] = $"{trace.GetProperty("from").GetInt64()}-{trace.GetProperty("to").GetInt64()}",
            },
        };
    }
}
