using System.Text.Json;
using Orchestrator.Cli.Commands;

namespace Orchestrator.Cli.Tests;

public sealed class ChromeTraceTests
{
    [Fact]
    public void A_trace_becomes_complete_events_on_a_named_track_per_rank_with_bucket_bytes()
    {
        var trace = JsonDocument.Parse("""
            { "id": "job-1", "traceId": "t1", "from": 5, "to": 5,
              "ranks": [ { "rank": 0, "node": "akka.ssl.tcp://orchestrator@127.0.0.1:4001", "complete": true },
                         { "rank": 1, "node": "akka.ssl.tcp://orchestrator@127.0.0.1:4002", "complete": true } ],
              "spans": [ { "rank": 1, "name": "all-reduce bucket 0", "step": 5, "startUs": 1010, "durationUs": 20, "bytes": 4096 },
                         { "rank": 1, "name": "step", "step": 5, "startUs": 1000, "durationUs": 100, "bytes": -1 },
                         { "rank": 0, "name": "forward", "step": 5, "startUs": 1001, "durationUs": 30, "bytes": -1 } ] }
            """).RootElement;
        var chrome = JsonDocument.Parse(ChromeTrace.Build(trace).ToJsonString()).RootElement;
        var events = chrome.GetProperty("traceEvents").EnumerateArray().ToList();
        Assert.Contains(events, e => e.GetProperty("ph").GetString() == "M" && e.GetProperty("pid").GetInt32() == 1
                                     && e.GetProperty("args").GetProperty("name").GetString() == "rank 1 (127.0.0.1:4002)");
        var complete = events.Where(e => e.GetProperty("ph").GetString() == "X").ToList();
        Assert.Equal(3, complete.Count);
        // Per rank by start: rank 1's step before the bucket inside it.
        Assert.Equal(["forward", "step", "all-reduce bucket 0"], complete.Select(e => e.GetProperty("name").GetString()));
        var bucket = complete[2];
        Assert.Equal(4096, bucket.GetProperty("args").GetProperty("bytes").GetInt64());
        Assert.Equal("communication", bucket.GetProperty("cat").GetString());
        Assert.Equal(1010, bucket.GetProperty("ts").GetInt64());
        Assert.Equal(20, bucket.GetProperty("dur").GetInt64());
        Assert.False(complete[0].GetProperty("args").TryGetProperty("bytes", out _));
        Assert.Equal("5-5", chrome.GetProperty("otherData").GetProperty("steps").GetString());
    }
}
