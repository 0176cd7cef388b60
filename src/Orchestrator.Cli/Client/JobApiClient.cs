using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Orchestrator.Core.Security;

namespace Orchestrator.Cli.Client;

/// <summary>An error answer of the job API, or no answer at all; carries the exit code it maps to.</summary>
public sealed class ApiException(string message, int exitCode) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>
/// The job API over HTTP. Every failure becomes an <see cref="ApiException"/> with a message that names
/// the address; connecting is bounded by <c>connect-timeout</c>, so an unreachable contact point fails
/// within seconds. While the job manager is starting or moving (503) a request is retried until
/// <c>request-timeout</c>.
/// </summary>
public sealed class JobApiClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly ClientSettings _settings;

    public JobApiClient(ClientSettings settings)
    {
        _settings = settings;
        var handler = new SocketsHttpHandler { ConnectTimeout = settings.ConnectTimeout };
        if (settings.CaPath is { } caPath)
        {
            // Pinned to the cluster's CA: the node's certificate must chain to it and name the host dialled.
            var trust = LoadTrust(caPath);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                var peer = certificate as X509Certificate2 ?? (certificate is null ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
                if (trust.VerifyTls(peer, errors, checkName: true, ClusterTrust.ServerAuthOid, out var reason)) return true;
                _refusal = reason;
                return false;
            };
        }
        _http = new HttpClient(handler) { BaseAddress = settings.Contact, Timeout = settings.RequestTimeout };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", settings.Token);
    }

    private string? _refusal;

    private static ClusterTrust LoadTrust(string caPath)
    {
        try { return ClusterTrust.Load(caPath); }
        catch (Exception ex) when (ex is IOException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new UsageException($"--ca {caPath}: {ex.Message}");
        }
    }

    public JsonElement Get(string path) => Send(() => new HttpRequestMessage(HttpMethod.Get, path));

    /// <summary>POST; with <paramref name="idempotencyKey"/>, every attempt (the retries on 503 too) carries the same key.</summary>
    public JsonElement Post(string path, string? body = null, string? idempotencyKey = null) => Send(() =>
    {
        var message = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json"),
        };
        if (idempotencyKey is not null) message.Headers.Add("Idempotency-Key", idempotencyKey);
        return message;
    });

    /// <summary>Uploads bytes (a workload package) with PUT.</summary>
    public JsonElement Put(string path, byte[] body) => Send(() => new HttpRequestMessage(HttpMethod.Put, path)
    {
        Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/zip") } },
    });

    /// <summary>Whether the resource exists (HEAD: 2xx yes, 404 no; anything else is an error).</summary>
    public bool Exists(string path)
    {
        try
        {
            Send(() => new HttpRequestMessage(HttpMethod.Head, path), emptyIsOk: true);
            return true;
        }
        catch (NotFound) { return false; }
    }

    private sealed class NotFound() : Exception("not found");

    private JsonElement Send(Func<HttpRequestMessage> request, bool emptyIsOk = false)
    {
        var deadline = DateTime.UtcNow + _settings.RequestTimeout;
        while (true)
        {
            using var message = request();
            HttpResponseMessage response;
            try
            {
                response = _http.Send(message);
            }
            catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.SecureConnectionError)
            {
                var why = _refusal ?? ex.InnerException?.Message ?? ex.Message;
                var hint = _settings.CaPath is null ? $" (give the cluster's CA with --ca, {ClientSettings.CaVariable} or ca in client.conf)" : "";
                throw new ApiException($"the job API at {_settings.Contact} is not this cluster's: {why}{hint}", ExitCodes.Failed);
            }
            catch (HttpRequestException ex) when (_settings.Contact.Scheme == "http" && ex.HttpRequestError is HttpRequestError.ResponseEnded or HttpRequestError.InvalidResponse)
            {
                throw new ApiException($"the job API at {_settings.Contact} gave no HTTP answer: a node with certificates speaks https; " +
                                       $"use https://{_settings.Contact.Authority}", ExitCodes.Failed);
            }
            catch (HttpRequestException ex)
            {
                var why = ex.InnerException is SocketException se ? se.Message : ex.Message;
                throw new ApiException($"cannot reach the job API at {_settings.Contact}: {why}", ExitCodes.Failed);
            }
            catch (TaskCanceledException)
            {
                throw new ApiException($"the job API at {_settings.Contact} did not answer within {_settings.RequestTimeout.TotalSeconds:0} s", ExitCodes.Failed);
            }
            using (response)
            {
                var text = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
                if (response.IsSuccessStatusCode) return emptyIsOk && text.Length == 0 ? default : Parse(text);
                if (emptyIsOk && response.StatusCode == HttpStatusCode.NotFound) throw new NotFound();
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline)
                {
                    Thread.Sleep(500);
                    continue;
                }
                throw Error(response.StatusCode, text);
            }
        }
    }

    private JsonElement Parse(string text)
    {
        try { return JsonDocument.Parse(text).RootElement.Clone(); }
        catch (JsonException) { throw new ApiException($"the job API at {_settings.Contact} answered with something that is not JSON", ExitCodes.Failed); }
    }

    private ApiException Error(HttpStatusCode status, string body)
    {
        string field = "", error = body;
        try
        {
            var json = JsonDocument.Parse(body).RootElement;
            field = json.TryGetProperty("field", out var f) ? f.GetString() ?? "" : "";
            error = json.TryGetProperty("error", out var e) ? e.GetString() ?? body : body;
        }
        catch (JsonException) { }
        return status switch
        {
            HttpStatusCode.BadRequest => new ApiException(field.Length == 0 ? $"invalid job: {error}" : $"invalid job: field '{field}': {error}", ExitCodes.BadInput),
            HttpStatusCode.Unauthorized => new ApiException($"the job API at {_settings.Contact} refused the token (401); check --token or {ClientSettings.TokenVariable}", ExitCodes.Failed),
            HttpStatusCode.NotFound => new ApiException(error.Length > 0 ? error : "not found", ExitCodes.BadInput),
            HttpStatusCode.RequestEntityTooLarge => new ApiException(error, ExitCodes.BadInput),
            _ => new ApiException($"the job API at {_settings.Contact} answered {(int)status}: {error}", ExitCodes.Failed),
        };
    }

    public void Dispose() => _http.Dispose();
}
