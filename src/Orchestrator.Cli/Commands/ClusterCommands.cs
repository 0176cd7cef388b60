using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Orchestrator.Cli.Client;
using Orchestrator.Core.Jobs;
using Spectre.Console;

namespace Orchestrator.Cli.Commands;

/// <summary>
/// The commands that talk to a cluster's job API (PRODUCT.md section 7): submit, status, list, watch,
/// cancel, checkpoints, metrics, plot, workers. Each takes --contact and --token; --json prints the API's document.
/// </summary>
public static class ClusterCommands
{
    private static readonly HashSet<string> EndStates = ["Completed", "Failed", "Cancelled"];

    public static IEnumerable<Command> Create()
    {
        yield return Submit();
        yield return Status();
        yield return List();
        yield return Watch();
        yield return Cancel();
        yield return Checkpoints();
        yield return Metrics();
        yield return Plot();
        yield return Logs();
        yield return Trace();
        yield return Workers();
    }

    private sealed class Connection
    {
        public readonly Option<string?> Contact = new("--contact") { Description = "the job API, https://host:port (http:// for an --insecure cluster; default: $ORCHESTRATOR_CONTACT, cluster-config/client.conf, or the local cluster's run folder)" };
        public readonly Option<string?> Token = new("--token") { Description = "the API token (default: $ORCHESTRATOR_TOKEN, cluster-config/client.conf, or the local cluster's run folder)" };

        public readonly Option<string?> Ca = new("--ca") { Description = "the cluster's CA certificate (ca.crt from orchestrator-node init), which an https job API must chain to (default: $ORCHESTRATOR_CA, cluster-config/client.conf, or the local cluster's run folder)" };

        public void AddTo(Command command) { command.Options.Add(Contact); command.Options.Add(Token); command.Options.Add(Ca); }

        public JobApiClient Open(ParseResult result) => new(ClientSettings.Resolve(result.GetValue(Contact), result.GetValue(Token), result.GetValue(Ca)));
    }

    private static Command Submit()
    {
        var connection = new Connection();
        var job = new Argument<string>("job") { Description = "the job file (JSON)" };
        var wait = new Option<bool>("--wait") { Description = "watch the job until it ends; exit 0 only if it completed" };
        var json = new Option<bool>("--json") { Description = "print {id, name, state} as JSON" };
        var command = new Command("submit", "submit a job to the cluster; prints the new job's id") { job, wait, json };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            var path = result.GetValue(job)!;
            if (!File.Exists(path)) throw new UsageException($"job file not found: {path}");
            var spec = JobSpecParser.ParseFile(path);
            WorkloadLoading.Check(spec);
            using var api = connection.Open(result);
            var text = JobFileForCluster(path, spec, api);
            // One key for this submit: a retry after a 503 whose submit was recorded after all gets the same job back.
            var accepted = api.Post("/api/v1/jobs", text, idempotencyKey: Guid.NewGuid().ToString("N"));
            var id = accepted.GetProperty("id").GetString()!;
            Console.WriteLine(result.GetValue(json) ? JsonOutput.Serialize(accepted) : id);
            return result.GetValue(wait) ? Follow(api, id, quiet: result.GetValue(json)) : ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>
    /// The job file as the cluster gets it, once checked here: a package given by path is packed and
    /// uploaded (unless the coordinator has it already) and named by its SHA-256; the folder its relative
    /// arguments are taken from becomes absolute (the workers read their data from there).
    /// </summary>
    private static string JobFileForCluster(string path, JobSpec spec, JobApiClient api)
    {
        var text = File.ReadAllText(path);
        if (spec.Package is not { } package) return text;
        var source = package.Source;
        if (!source.StartsWith(JobSpecParser.PackageHashPrefix, StringComparison.Ordinal))
        {
            var (bytes, sha) = PackWithin(source);
            if (api.Exists($"/api/v1/packages/{sha}"))
                Console.Error.WriteLine($"package sha256:{sha} is on the coordinator already (0 bytes sent)");
            else
            {
                api.Put($"/api/v1/packages/{sha}", bytes);
                Console.Error.WriteLine($"package sha256:{sha} uploaded ({bytes.Length} bytes)");
            }
            source = JobSpecParser.PackageHashPrefix + sha;
        }
        var document = System.Text.Json.Nodes.JsonNode.Parse(text)!;
        var workload = document["workload"]!.AsObject();
        workload["package"] = source;
        workload["baseDir"] = package.BaseDirectory;
        return document.ToJsonString();
    }

    /// <summary>The largest package the client packs: the coordinator refuses larger ones by its own limit (413).</summary>
    private const long MaxPackageBytes = 1L << 30;

    private static (byte[] Bytes, string Sha256) PackWithin(string source)
    {
        try { return Orchestrator.Training.Workloads.PackageArchive.Pack(source, MaxPackageBytes); }
        catch (Orchestrator.Training.Workloads.WorkloadLoadException ex) { throw new UsageException($"cannot pack the workload: {ex.Message}"); }
    }

    private static Command Status()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var json = new Option<bool>("--json") { Description = "print the status document as JSON" };
        var command = new Command("status", "a job's state, progress, workers, checkpoints and error") { id, json };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            using var api = connection.Open(result);
            var status = api.Get(JobPath(result.GetValue(id)!));
            if (result.GetValue(json)) Console.WriteLine(JsonOutput.Serialize(status));
            else PrintStatus(status);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command List()
    {
        var connection = new Connection();
        var json = new Option<bool>("--json") { Description = "print [{id, name, state}] as JSON" };
        var command = new Command("list", "every job the cluster has accepted, with its state") { json };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            using var api = connection.Open(result);
            var jobs = api.Get("/api/v1/jobs");
            if (result.GetValue(json)) { Console.WriteLine(JsonOutput.Serialize(jobs)); return ExitCodes.Success; }
            if (jobs.GetArrayLength() == 0) { Console.WriteLine("no jobs"); return ExitCodes.Success; }
            var table = new Table().AddColumns("id", "name", "state");
            foreach (var j in jobs.EnumerateArray()) table.AddRow(Text(j, "id"), Text(j, "name"), Text(j, "state"));
            AnsiConsole.Write(table);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Watch()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var command = new Command("watch", "follow a job until it ends: progress, loss, throughput; exit 0 only if it completed") { id };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            using var api = connection.Open(result);
            return Follow(api, result.GetValue(id)!, quiet: false);
        }));
        return command;
    }

    private static Command Cancel()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var command = new Command("cancel", "stop a job (queued or running); its checkpoints stay") { id };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            using var api = connection.Open(result);
            var jobId = result.GetValue(id)!;
            var answer = api.Post(JobPath(jobId) + "/cancel");
            var state = Text(answer, "state");
            if (answer.GetProperty("changed").GetBoolean()) { Console.WriteLine($"{jobId}: {state}"); return ExitCodes.Success; }
            Console.Error.WriteLine($"orchestrator: job {jobId} had already ended ({state}); nothing to cancel");
            return ExitCodes.Failed;
        }));
        return command;
    }

    private static Command Checkpoints()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var json = new Option<bool>("--json") { Description = "print [{step, epoch, path, accuracy, loss, verified}] as JSON, oldest first" };
        var command = new Command("checkpoints", "a job's checkpoints with step, metrics, path and whether they verify") { id, json };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            using var api = connection.Open(result);
            var list = api.Get(JobPath(result.GetValue(id)!) + "/checkpoints");
            if (result.GetValue(json)) { Console.WriteLine(JsonOutput.Serialize(list)); return ExitCodes.Success; }
            if (list.GetArrayLength() == 0) { Console.WriteLine("no checkpoints"); return ExitCodes.Success; }
            // One column per metric the workload names (accuracy and loss for the built-ins).
            var names = list.EnumerateArray().SelectMany(c => c.TryGetProperty("metrics", out var m) && m.ValueKind == JsonValueKind.Object
                ? m.EnumerateObject().Select(p => p.Name) : []).Distinct().Order(StringComparer.Ordinal).ToList();
            if (names.Count == 0) names = ["accuracy", "loss"];
            var table = new Table().AddColumns(["step", "epoch", .. names, "verified", "path"]);
            foreach (var c in list.EnumerateArray())
                table.AddRow([Text(c, "step"), Text(c, "epoch"), .. names.Select(n => Metric(c, n)), Text(c, "verified"), Text(c, "path")]);
            AnsiConsole.Write(table);
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Metrics()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var since = new Option<long?>("--since") { Description = "only the steps after this one" };
        var json = new Option<bool>("--json") { Description = "print {id, points: [{step, epoch, loss, learningRate, samplesPerSecond, communicationShare, atMs, workers}], evaluations: [{step, metrics}]} as JSON" };
        var command = new Command("metrics", "a job's metrics history: loss, learning rate, throughput and communication share per reported step, and every checkpoint's held-out metrics") { id, since, json };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            var after = result.GetValue(since) ?? -1;
            if (after < -1) throw new UsageException($"--since must be a step number (0 or more), was {after}");
            using var api = connection.Open(result);
            // The API answers a page at a time; History asks again after the last step until it says there is no more.
            var (points, evaluations) = History(api, JobPath(result.GetValue(id)!), after);
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonOutput.Serialize(new { id = result.GetValue(id), points, evaluations }));
                return ExitCodes.Success;
            }
            if (points.Count == 0) Console.WriteLine("no steps reported yet");
            else
            {
                var table = new Table().AddColumns("step", "epoch", "loss", "learning rate", "samples/s", "communication", "workers (samples/s)");
                foreach (var p in points)
                    table.AddRow(Text(p, "step"), Text(p, "epoch"), Number(p, "loss", "F4"), Number(p, "learningRate", "G4"), Number(p, "samplesPerSecond", "F0"),
                        Number(p, "communicationShare", "P0"),
                        string.Join(" ", p.GetProperty("workers").EnumerateArray().Select(w => $"{Text(w, "rank")}:{Number(w, "samplesPerSecond", "F0")}")));
                AnsiConsole.Write(table);
            }
            if (evaluations.Count > 0)
            {
                var names = evaluations.SelectMany(e => e.GetProperty("metrics").EnumerateObject().Select(m => m.Name)).Distinct().Order(StringComparer.Ordinal).ToList();
                var held = new Table().AddColumns(["checkpoint step", .. names]);
                foreach (var e in evaluations) held.AddRow([Text(e, "step"), .. names.Select(n => Metric(e, n))]);
                AnsiConsole.Write(held);
            }
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command Plot()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var output = new Option<string?>("--out") { Description = "the PNG to write (default: <job-id>.png here)" };
        var command = new Command("plot", "draw a job's metrics history as a PNG: loss and held-out metrics against step, samples/s and communication share per worker") { id, output };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            var job = result.GetValue(id)!;
            var path = Path.GetFullPath(result.GetValue(output) ?? job + ".png");
            if (Path.GetDirectoryName(path) is { } folder && !Directory.Exists(folder))
                throw new UsageException($"--out {result.GetValue(output)}: the folder {folder} does not exist");
            using var api = connection.Open(result);
            var (points, evaluations) = History(api, JobPath(job));
            var (chartPoints, chartEvaluations) = MetricsChart.FromJson(points, evaluations);
            MetricsChart.Save(job, chartPoints, chartEvaluations, path);
            Console.WriteLine(path);
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>Every point of a job's metrics history (page after page) and its evaluations.</summary>
    private static (List<JsonElement> Points, List<JsonElement> Evaluations) History(JobApiClient api, string path, long after = -1)
    {
        var points = new List<JsonElement>();
        while (true)
        {
            var page = api.Get($"{path}/metrics{(after >= 0 ? $"?since={after}" : "")}");
            points.AddRange(page.GetProperty("points").EnumerateArray());
            if (!page.GetProperty("more").GetBoolean() || points.Count == 0) return (points, page.GetProperty("evaluations").EnumerateArray().ToList());
            after = points[^1].GetProperty("step").GetInt64();
        }
    }

    private static Command Logs()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var follow = new Option<bool>("--follow", "-f") { Description = "keep printing new lines as they arrive, until the job ends" };
        var worker = new Option<int?>("--worker") { Description = "only the lines of the worker with this rank (0 is the first)" };
        var json = new Option<bool>("--json") { Description = "print [{seq, atMs, node, rank, level, text}] as JSON (with --follow, one line of JSON per log line)" };
        var command = new Command("logs", "a job's log lines from every worker and from its runner on the coordinator, in time order, each with its node") { id, follow, worker, json };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            var rank = result.GetValue(worker);
            if (rank < 0) throw new UsageException($"--worker must be a rank (0 or more), was {rank}");
            var job = result.GetValue(id)!;
            using var api = connection.Open(result);
            var asJson = result.GetValue(json);
            long after = 0;
            var printed = false;
            void Print(List<JsonElement> lines)
            {
                // Lines arrive by node in batches about a second apart: each batch is printed in the order its lines were written.
                foreach (var line in lines.OrderBy(l => l.GetProperty("atMs").GetInt64()))
                    Console.WriteLine(asJson ? line.GetRawText() : LogLine(line));
                printed |= lines.Count > 0;
            }
            var (first, dropped) = LogPages(api, job, ref after, rank);
            if (!result.GetValue(follow))
            {
                if (asJson) { Console.WriteLine(JsonOutput.Serialize(first.OrderBy(l => l.GetProperty("atMs").GetInt64()))); return ExitCodes.Success; }
                if (dropped > 0) Console.WriteLine($"({dropped} earlier line(s) no longer kept)");
                Print(first);
                if (!printed) Console.WriteLine("no log lines yet");
                return ExitCodes.Success;
            }
            if (dropped > 0 && !asJson) Console.WriteLine($"({dropped} earlier line(s) no longer kept)");
            Print(first);
            while (true)
            {
                var ended = EndStates.Contains(api.Get(JobPath(job)).GetProperty("state").GetString() ?? "");
                if (ended) Thread.Sleep(TimeSpan.FromSeconds(2));   // the workers' last batches are at most a second behind
                else Thread.Sleep(TimeSpan.FromSeconds(1));
                Print(LogPages(api, job, ref after, rank).Lines);
                if (ended) return ExitCodes.Success;
            }
        }));
        return command;
    }

    private static Command Trace()
    {
        var connection = new Connection();
        var id = new Argument<string>("job-id");
        var steps = new Option<string>("--steps") { Description = "the steps to trace, A-B (counted from 1, at most 20, not yet run)", Required = true };
        var output = new Option<string?>("--out") { Description = "the Chrome trace to write (default: <job-id>-trace.json here); open it in chrome://tracing or ui.perfetto.dev" };
        var timeout = new Option<int>("--timeout") { Description = "seconds to wait for the steps to run", DefaultValueFactory = _ => 600 };
        var command = new Command("trace", "record a timeline of a running job's steps on every worker (forward, backward, gather, each bucket's all-reduce, scatter, optimizer, checkpoint capture) as a Chrome trace") { id, steps, output, timeout };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            var job = result.GetValue(id)!;
            var range = System.Text.RegularExpressions.Regex.Match(result.GetValue(steps) ?? "", @"^\s*(\d{1,15})\s*-\s*(\d{1,15})\s*$");
            if (!range.Success) throw new UsageException($"--steps must be A-B (two step numbers), was '{result.GetValue(steps)}'");
            var (from, to) = (long.Parse(range.Groups[1].Value), long.Parse(range.Groups[2].Value));
            var path = Path.GetFullPath(result.GetValue(output) ?? job + "-trace.json");
            if (Path.GetDirectoryName(path) is { } folder && !Directory.Exists(folder))
                throw new UsageException($"--out {result.GetValue(output)}: the folder {folder} does not exist");
            using var api = connection.Open(result);
            var started = api.Post($"{JobPath(job)}/trace", JsonOutput.Serialize(new { from, to }));
            var traceId = started.GetProperty("traceId").GetString();
            Console.Error.WriteLine($"tracing steps {from}-{to} of {job} on {started.GetProperty("ranks").GetArrayLength()} worker(s)...");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(Math.Max(result.GetValue(timeout), 1));
            while (true)
            {
                var trace = api.Get($"{JobPath(job)}/trace");
                if (trace.GetProperty("traceId").GetString() != traceId)
                    throw new ApiException($"another trace of {job} was asked for meanwhile", ExitCodes.Failed);
                var ranks = trace.GetProperty("ranks").EnumerateArray().ToList();
                if (ranks.All(r => r.GetProperty("complete").GetBoolean()))
                {
                    File.WriteAllText(path, ChromeTrace.Build(trace).ToJsonString());
                    var count = trace.GetProperty("spans").GetArrayLength();
                    Console.WriteLine(path);
                    if (count == 0) Console.Error.WriteLine("the workers recorded no spans: the steps had run before the request reached them");
                    return ExitCodes.Success;
                }
                var state = api.Get(JobPath(job)).GetProperty("state").GetString() ?? "";
                var waiting = string.Join(", ", ranks.Where(r => !r.GetProperty("complete").GetBoolean()).Select(r => $"rank {r.GetProperty("rank").GetInt32()}"));
                if (state != "Running")
                    throw new ApiException($"job {job} is {state}; no trace from {waiting} (a recovery or the job's end came first)", ExitCodes.Failed);
                if (DateTime.UtcNow > deadline)
                    throw new ApiException($"no trace from {waiting} within {result.GetValue(timeout)} s", ExitCodes.Failed);
                Thread.Sleep(1000);
            }
        }));
        return command;
    }

    /// <summary>Every line of a job's log after sequence number <paramref name="after"/> (page after page), which moves to the last one read.</summary>
    private static (List<JsonElement> Lines, long Dropped) LogPages(JobApiClient api, string job, ref long after, int? rank)
    {
        var lines = new List<JsonElement>();
        while (true)
        {
            var page = api.Get($"{JobPath(job)}/logs?since={after}{(rank is { } r ? $"&rank={r}" : "")}");
            var got = page.GetProperty("lines").EnumerateArray().ToList();
            lines.AddRange(got);
            if (got.Count > 0) after = got[^1].GetProperty("seq").GetInt64();
            if (!page.GetProperty("more").GetBoolean() || got.Count == 0) return (lines, page.GetProperty("dropped").GetInt64());
        }
    }

    /// <summary><c>2026-12-01T20:48:25.601Z rank 0 127.0.0.1:42954  info  text</c>: when, where (the runner for rank -1), how bad, what.</summary>
    private static string LogLine(JsonElement line)
    {
        var ms = Math.Clamp(line.GetProperty("atMs").GetInt64(), 0, DateTimeOffset.MaxValue.ToUnixTimeMilliseconds());
        var at = DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
        var rank = line.GetProperty("rank").GetInt32();
        var node = Text(line, "node");
        var at_ = node.IndexOf('@');
        var host = at_ >= 0 ? node[(at_ + 1)..] : node;
        var who = rank < 0 ? $"runner {host}" : $"rank {rank} {host}";
        return $"{at} {who,-24} {Text(line, "level"),-7} {Text(line, "text")}";
    }

    private static Command Workers()
    {
        var connection = new Connection();
        var json = new Option<bool>("--json") { Description = "print [{node, status, devices, runningJob}] as JSON" };
        var command = new Command("workers", "the worker nodes the coordinator knows, with their devices") { json };
        connection.AddTo(command);
        command.SetAction(result => Run(() =>
        {
            using var api = connection.Open(result);
            var workers = api.Get("/api/v1/workers");
            if (result.GetValue(json)) { Console.WriteLine(JsonOutput.Serialize(workers)); return ExitCodes.Success; }
            if (workers.GetArrayLength() == 0) { Console.WriteLine("no workers registered"); return ExitCodes.Success; }
            var table = new Table().AddColumns("node", "status", "devices", "job");
            foreach (var w in workers.EnumerateArray())
                table.AddRow(Text(w, "node"), Text(w, "status"),
                    string.Join(", ", w.GetProperty("devices").EnumerateArray().Select(d => $"{Text(d, "type")}:{Text(d, "index")}")), Text(w, "runningJob"));
            AnsiConsole.Write(table);
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>Polls the job until it ends; a progress bar on a terminal, a line every few seconds otherwise.</summary>
    private static int Follow(JobApiClient api, string id, bool quiet)
    {
        var path = JobPath(id);
        JsonElement status;
        if (!quiet && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            status = default;
            AnsiConsole.Progress().AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .Start(context =>
                {
                    var task = context.AddTask(id, maxValue: 1);
                    // The loss so far, from the job's metrics history (with the steps before this watch began).
                    var losses = new List<double>();
                    long lastStep = -1;
                    while (true)
                    {
                        status = api.Get(path);
                        if (Long(status, "totalSteps") is { } total and > 0) task.MaxValue = total;
                        task.Value = Long(status, "step") ?? 0;
                        lastStep = AppendLosses(api, path, lastStep, losses);
                        task.Description = Markup.Escape($"{Describe(status)} {Sparkline.Of(losses, 24)}");
                        if (EndStates.Contains(Text(status, "state"))) break;
                        Thread.Sleep(500);
                    }
                });
        }
        else
        {
            string last = "";
            var lastAt = DateTime.MinValue;
            while (true)
            {
                status = api.Get(path);
                var line = Describe(status);
                bool ended = EndStates.Contains(Text(status, "state"));
                if (!quiet && line != last && (ended || DateTime.UtcNow - lastAt >= TimeSpan.FromSeconds(2)))
                {
                    Console.WriteLine(line);
                    last = line;
                    lastAt = DateTime.UtcNow;
                }
                if (ended) break;
                Thread.Sleep(500);
            }
        }
        var state = Text(status, "state");
        if (state == "Completed")
        {
            if (!quiet)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{id} completed: held-out {Metrics(status)}, {Text(status, "step")} steps"));
                Console.WriteLine($"weights: {Text(status, "weights")}");
            }
            return ExitCodes.Success;
        }
        Console.Error.WriteLine($"orchestrator: job {id} ended {state}{(Text(status, "error") is { Length: > 0 } e ? ": " + e : "")}");
        return ExitCodes.Failed;
    }

    private static string Describe(JsonElement s)
    {
        var state = Text(s, "state");
        if (state is "Queued" or "Recovering") return $"{Text(s, "id")} {state}: {Text(s, "message")}";
        var line = string.Create(CultureInfo.InvariantCulture, $"{Text(s, "id")} {state}");
        if (Long(s, "totalSteps") is { } total)
            line += string.Create(CultureInfo.InvariantCulture,
                $" epoch {Text(s, "epoch")}/{Text(s, "epochs")} step {Text(s, "step")}/{total} loss {Number(s, "loss", "F4")} {Number(s, "samplesPerSecond", "F0")} samples/s");
        // The latest checkpoint's evaluation, as the checkpoint actor reports it.
        if (s.TryGetProperty("latestCheckpoint", out var c) && c.ValueKind == JsonValueKind.Object)
            line += $" | checkpoint {Text(c, "step")}" + (Metrics(c) is { Length: > 0 } m ? $" {m}" : " (evaluating)");
        return line;
    }

    private static void PrintStatus(JsonElement s)
    {
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, string value) { if (value.Length > 0) grid.AddRow(name, Markup.Escape(value)); }
        Row("id", Text(s, "id"));
        Row("name", Text(s, "name"));
        Row("state", Text(s, "state"));
        Row(Text(s, "state") is "Queued" or "Recovering" ? "waiting" : "note", Text(s, "message"));
        if (Long(s, "failures") is long failures && failures > 0) Row("recoveries", failures.ToString(CultureInfo.InvariantCulture));
        if (Long(s, "totalSteps") is { } total)
        {
            Row("epoch", $"{Text(s, "epoch")}/{Text(s, "epochs")}");
            Row("step", $"{Text(s, "step")}/{total}");
        }
        Row("loss", Number(s, "loss", "F4"));
        Row("samples/s", Number(s, "samplesPerSecond", "F0"));
        Row("workload", Text(s, "workload"));
        Row("held-out", Metrics(s));
        Row("workers", string.Join(", ", s.GetProperty("workers").EnumerateArray().Select(w => w.GetString())));
        Row("devices", Text(s, "devicesRequested"));
        Row("failures", Text(s, "failures") == "0" ? "" : Text(s, "failures"));
        Row("latest checkpoint", Checkpoint(s, "latestCheckpoint"));
        Row("best checkpoint", Checkpoint(s, "bestCheckpoint"));
        Row("weights", Text(s, "weights"));
        Row("tensorboard", Text(s, "tensorBoard"));
        Row("error", Text(s, "error"));
        Row("submitted", Text(s, "submittedAt"));
        Row("ended", Text(s, "endedAt"));
        AnsiConsole.Write(grid);
    }

    /// <summary>Held-out metrics by name, the ranking one first (<c>accuracy 0.8514, loss 0.4120</c>); the fields of old jobs where there are no names.</summary>
    private static string Metrics(JsonElement holder)
    {
        if (holder.TryGetProperty("metrics", out var m) && m.ValueKind == JsonValueKind.Object)
        {
            var rank = holder.TryGetProperty("rankMetric", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : "accuracy";
            return string.Join(", ", m.EnumerateObject().OrderBy(p => p.Name == rank ? 0 : 1).ThenBy(p => p.Name, StringComparer.Ordinal)
                .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Name} {Format(p.Value)}")));
        }
        return Number(holder, "accuracy", "F4") is { Length: > 0 } accuracy ? $"accuracy {accuracy}" : "";
    }

    private static string Metric(JsonElement holder, string name) =>
        holder.TryGetProperty("metrics", out var m) && m.ValueKind == JsonValueKind.Object && m.TryGetProperty(name, out var v) ? Format(v) : Number(holder, name, "F4");

    private static string Format(JsonElement v) => v.ValueKind == JsonValueKind.Number ? v.GetDouble().ToString("F4", CultureInfo.InvariantCulture) : "";

    private static string Checkpoint(JsonElement s, string name) =>
        s.TryGetProperty(name, out var c) && c.ValueKind == JsonValueKind.Object
            ? $"step {Text(c, "step")}, " +
              (Metrics(c) is { Length: > 0 } metrics ? metrics : "not evaluated yet") +
              $", {(c.GetProperty("verified").GetBoolean() ? "verified" : "UNVERIFIED")}, {Text(c, "path")}"
            : "";

    /// <summary>Appends the losses reported after step <paramref name="since"/>; returns the last step seen.</summary>
    private static long AppendLosses(JobApiClient api, string path, long since, List<double> losses)
    {
        var (points, _) = History(api, path, since);
        losses.AddRange(points.Select(p => p.GetProperty("loss").ValueKind == JsonValueKind.Number ? p.GetProperty("loss").GetDouble() : double.NaN));
        return points.Count > 0 ? points[^1].GetProperty("step").GetInt64() : since;
    }

    private static string JobPath(string id) => "/api/v1/jobs/" + Uri.EscapeDataString(id);

    private static string Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString() ?? "",
            JsonValueKind.Null or JsonValueKind.Undefined => "",
            JsonValueKind.True => "yes",
            JsonValueKind.False => "no",
            _ => v.GetRawText(),
        } : "";

    private static long? Long(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    private static string Number(JsonElement e, string name, string format) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble().ToString(format, CultureInfo.InvariantCulture) : "";

    private static int Run(Func<int> command) => CliErrors.Run(command);
}
