using Akka.Actor;
using Akka.Hosting;
using Prometheus;
using Orchestrator.Cluster.Coordinator;
using Orchestrator.Cluster.Packages;
using static Orchestrator.Core.Protocol.JobProtocol;

namespace Orchestrator.Node;

/// <summary>
/// The job API (PRODUCT.md section 2), versioned under <c>/api/v1/</c>: plain JSON with fixed schemas,
/// every request but <c>/health</c> authenticated by the bearer token, every call to the job manager
/// an Ask with a timeout through the singleton proxy.
/// </summary>
public static class JobApi
{
    // A job file travels to every worker inside StartTraining, one Akka Remote message under the 256,000-byte
    // frame with the ring's addresses beside it (up to 1,024 workers): a larger one could be accepted and
    // then never arrive, so it is refused here with the limit named.
    private const int MaxJobFileBytes = 128 * 1024;

    public static void Map(WebApplication app, ApiToken token, TimeSpan askTimeout, PackageStore packages, Web.UiSessions sessions)
    {
        app.Use(async (context, next) =>
        {
            if (context.Request.Path == "/health" || Web.WebUi.IsPublic(context.Request.Path) || token.Accepts(context.Request.Headers.Authorization)
                || Web.WebUi.HasSession(context, sessions))
            {
                await next(context);
                return;
            }
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = "Bearer";
        });

        // Without a token: that the node is up, and nothing about the cluster.
        app.MapGet("/health", () => Results.Ok(new { status = "ok" }));
        // Prometheus metrics, behind the token like the rest (a scrape config's bearer token); docs/observability.md lists them.
        app.MapMetrics("/metrics");
        Web.WebUi.Map(app, token, sessions);

        var api = app.MapGroup("/api/v1");
        api.MapPost("/jobs", async (HttpRequest request, IRequiredActor<JobManagerKey> manager) =>
        {
            if (request.ContentLength is > MaxJobFileBytes) return Error(StatusCodes.Status413PayloadTooLarge, "", $"a job file may be at most {MaxJobFileBytes} bytes");
            using var reader = new StreamReader(request.Body);
            var text = await reader.ReadToEndAsync();
            if (text.Length > MaxJobFileBytes) return Error(StatusCodes.Status413PayloadTooLarge, "", $"a job file may be at most {MaxJobFileBytes} bytes");
            // A client that may retry sends the same key each time: a retry of a recorded submit answers with the job it made.
            var key = request.Headers[SubmissionKeyHeader].ToString();
            if (key.Length > 0 && !IsSubmissionKey(key))
                return Error(StatusCodes.Status400BadRequest, SubmissionKeyHeader, "must be 1 to 100 letters, digits, '-', '_' or '.'");
            return await AskJobManager(manager, new SubmitJob(text, key.Length == 0 ? null : key), askTimeout, reply => reply switch
            {
                JobAccepted accepted => Results.Created($"/api/v1/jobs/{Uri.EscapeDataString(accepted.Id)}", accepted),
                JobRejected rejected => Error(StatusCodes.Status400BadRequest, rejected.Field, rejected.Error),
                QueueFull full => Error(StatusCodes.Status429TooManyRequests, "",
                    $"{full.Limit} jobs are waiting already (orchestrator.coordinator.max-queued-jobs); nothing was queued, try later"),
                _ => null,
            });
        });
        api.MapGet("/jobs", (IRequiredActor<JobManagerKey> manager) =>
            AskJobManager(manager, ListJobs.Instance, askTimeout, reply => reply is JobList list ? Results.Ok(list.Jobs) : null));
        api.MapGet("/jobs/{id}", (string id, IRequiredActor<JobManagerKey> manager) =>
            AskJobManager(manager, new GetJob(id), askTimeout, reply => reply is JobStatus status ? Results.Ok(status) : null));
        api.MapPost("/jobs/{id}/cancel", (string id, IRequiredActor<JobManagerKey> manager) =>
            AskJobManager(manager, new CancelJob(id), askTimeout, reply => reply is CancelResult result ? Results.Ok(result) : null));
        api.MapGet("/jobs/{id}/checkpoints", (string id, IRequiredActor<JobManagerKey> manager) =>
            AskJobManager(manager, new GetCheckpoints(id), askTimeout, reply => reply is CheckpointList list ? Results.Ok(list.Checkpoints) : null));
        // Workload packages, content-addressed: PUT stores the body under its SHA-256 (checked), HEAD says whether it is here.
        api.MapMethods("/packages/{sha256}", ["HEAD"], (string sha256) =>
            PackageStore.IsHash(sha256) && packages.Has(sha256) ? Results.Ok() : Results.NotFound());
        api.MapPut("/packages/{sha256}", async (string sha256, HttpRequest request, ILoggerFactory logs, CancellationToken cancellation) =>
        {
            if (!PackageStore.IsHash(sha256)) return Error(StatusCodes.Status400BadRequest, "sha256", "must be 64 lower-case hex digits");
            if (request.ContentLength > packages.MaxBytes)
                return Error(StatusCodes.Status413PayloadTooLarge, "", $"the package is {request.ContentLength} bytes, over the limit of {packages.MaxBytes} (orchestrator.packages.max-bytes)");
            // Kestrel's own body limit (about 30 MB) must not cut a package that the setting allows; the store counts itself.
            if (request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                limit.MaxRequestBodySize = packages.MaxBytes + 1;
            var result = await packages.SaveAsync(sha256, request.Body, cancellation);
            if (result.Refusal is { } why) return Error(result.TooLarge ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status400BadRequest, "", why);
            if (result.Stored) logs.CreateLogger("Orchestrator.Packages").LogInformation("package sha256:{Sha} stored ({Bytes} bytes)", sha256, result.Bytes);
            return Results.Json(new { sha256, bytes = result.Bytes, stored = result.Stored }, statusCode: result.Stored ? StatusCodes.Status201Created : StatusCodes.Status200OK);
        });
        api.MapGet("/jobs/{id}/metrics", (string id, string? since, IRequiredActor<JobManagerKey> manager) =>
        {
            long after = -1;
            if (since is not null && (!long.TryParse(since, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out after) || after < 0))
                return Task.FromResult(Error(StatusCodes.Status400BadRequest, "since", $"must be a step number (0 or more), was '{since}'"));
            return AskJobManager(manager, new GetJobMetrics(id, after), askTimeout, reply => reply is JobMetrics metrics ? Results.Ok(metrics) : null);
        });
        api.MapGet("/jobs/{id}/logs", (string id, string? since, string? rank, IRequiredActor<JobManagerKey> manager) =>
        {
            long after = 0;
            if (since is not null && (!long.TryParse(since, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out after) || after < 0))
                return Task.FromResult(Error(StatusCodes.Status400BadRequest, "since", $"must be a line's sequence number (0 or more), was '{since}'"));
            int? only = null;
            if (rank is not null)
            {
                if (!int.TryParse(rank, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var r) || r < -1)
                    return Task.FromResult(Error(StatusCodes.Status400BadRequest, "rank", $"must be a worker's rank (0 or more; -1 for the runner), was '{rank}'"));
                only = r;
            }
            return AskJobManager(manager, new GetJobLogs(id, after, only), askTimeout, reply => reply is JobLogs logs ? Results.Ok(logs) : null);
        });
        // A step timeline: ask for steps {from, to} of a running job, then read what its workers sent.
        api.MapPost("/jobs/{id}/trace", async (string id, HttpRequest request, IRequiredActor<JobManagerKey> manager) =>
        {
            if (request.ContentLength is > 1024) return Error(StatusCodes.Status413PayloadTooLarge, "", "a trace request is at most 1024 bytes");
            // A chunked body has no length to check first: Kestrel stops reading it at the same bound.
            if (request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                limit.MaxRequestBodySize = 1024;
            long from, to;
            try
            {
                using var body = await System.Text.Json.JsonDocument.ParseAsync(request.Body);
                if (!body.RootElement.TryGetProperty("from", out var f) || !f.TryGetInt64(out from))
                    return Error(StatusCodes.Status400BadRequest, "from", "must be a step number");
                if (!body.RootElement.TryGetProperty("to", out var t) || !t.TryGetInt64(out to))
                    return Error(StatusCodes.Status400BadRequest, "to", "must be a step number");
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException)
            {
                return Error(StatusCodes.Status400BadRequest, "", "the body must be {\"from\": A, \"to\": B}");
            }
            catch (BadHttpRequestException) { return Error(StatusCodes.Status413PayloadTooLarge, "", "a trace request is at most 1024 bytes"); }
            return await AskJobManager(manager, new RequestTrace(id, from, to), askTimeout, reply => reply switch
            {
                TraceResult started => Results.Json(started, statusCode: StatusCodes.Status202Accepted),
                TraceRefused refused => Error(refused.Kind switch
                {
                    "conflict" => StatusCodes.Status409Conflict,
                    "later" => StatusCodes.Status503ServiceUnavailable,
                    _ => StatusCodes.Status400BadRequest,
                }, refused.Field, refused.Reason),
                _ => null,
            });
        });
        api.MapGet("/jobs/{id}/trace", (string id, IRequiredActor<JobManagerKey> manager) =>
            AskJobManager(manager, new GetTrace(id), askTimeout, reply => reply switch
            {
                TraceResult trace => Results.Ok(trace),
                TraceRefused none => Error(StatusCodes.Status404NotFound, "trace", none.Reason),
                _ => null,
            }));
        api.MapGet("/workers", (IRequiredActor<JobManagerKey> manager) =>
            AskJobManager(manager, GetWorkers.Instance, askTimeout, reply => reply is WorkerList list ? Results.Ok(list.Workers) : null));
    }

    private static async Task<IResult> AskJobManager(IRequiredActor<JobManagerKey> manager, object request, TimeSpan timeout, Func<object, IResult?> answer)
    {
        object reply;
        try
        {
            var proxy = await manager.GetAsync();
            reply = await proxy.Ask<object>(request, timeout);
        }
        catch (AskTimeoutException)
        {
            return Error(StatusCodes.Status503ServiceUnavailable, "",
                $"the job manager did not answer within {timeout.TotalSeconds:0} s (the coordinator singleton may be starting or moving)");
        }
        if (reply is JobManagerUnavailable down)
            return Error(StatusCodes.Status503ServiceUnavailable, "", $"{down.Reason}; it starts again within {down.RetryInSeconds} s");
        if (reply is JobNotFound notFound) return Error(StatusCodes.Status404NotFound, "id", $"no job with id '{notFound.Id}'");
        return answer(reply) ?? Error(StatusCodes.Status500InternalServerError, "", $"unexpected reply {reply.GetType().Name}");
    }

    public const string SubmissionKeyHeader = "Idempotency-Key";

    private static bool IsSubmissionKey(string key) =>
        key.Length <= 100 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>Every error body has the same shape: the field at fault (empty for none) and what is wrong.</summary>
    private static IResult Error(int status, string field, string error) => Results.Json(new { field, error }, statusCode: status);
}
