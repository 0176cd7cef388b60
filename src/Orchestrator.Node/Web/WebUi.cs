using Microsoft.AspNetCore.Http.Features;
using System.Reflection;

namespace Orchestrator.Node.Web;

/// <summary>
/// The web page on the job API (docs/observability.md): <c>/ui/</c> is the login form until the browser has a session,
/// then the page, a script that reads the same JSON API as the client (job list; a job's live charts, workers,
/// checkpoints and log). Its files are embedded in this assembly (no CDN, nothing fetched at run time); uPlot draws the
/// charts. A session authenticates only GET and HEAD requests, so a page on another site cannot make a logged-in browser
/// submit or cancel anything (SameSite=Strict already keeps the cookie off such requests).
/// </summary>
public static class WebUi
{
    public const string Prefix = "/ui";
    private const int LoginBodyLimit = 4096;
    private static readonly Assembly Assembly = typeof(WebUi).Assembly;
    private static readonly Dictionary<string, (string Resource, string Type)> Assets = new(StringComparer.Ordinal)
    {
        ["app.js"] = ("Orchestrator.Node.Web.app.js", "text/javascript; charset=utf-8"),
        ["app.css"] = ("Orchestrator.Node.Web.app.css", "text/css; charset=utf-8"),
        ["uPlot.iife.min.js"] = ("Orchestrator.Node.Web.uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ["uPlot.min.css"] = ("Orchestrator.Node.Web.uPlot.min.css", "text/css; charset=utf-8"),
    };

    /// <summary>Paths served without a token or session: the login form, logging in and out (of the session the cookie names), and the page's static files (no job data in any).</summary>
    public static bool IsPublic(PathString path) =>
        path == Prefix || path == Prefix + "/" || path == Prefix + "/login" || path == Prefix + "/logout" || path.StartsWithSegments(Prefix + "/assets");

    /// <summary>Whether this request is authenticated by a session cookie (GET or HEAD only).</summary>
    public static bool HasSession(HttpContext context, UiSessions sessions) =>
        (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method))
        && sessions.IsValid(context.Request.Cookies[UiSessions.Cookie]);

    public static void Map(WebApplication app, ApiToken token, UiSessions sessions)
    {
        app.MapGet("/", () => Results.Redirect(Prefix + "/"));
        app.MapGet(Prefix + "/", (HttpContext context) => sessions.IsValid(context.Request.Cookies[UiSessions.Cookie])
            ? Page(context, "Orchestrator.Node.Web.index.html")
            : Page(context, "Orchestrator.Node.Web.login.html",
                context.Request.Query.ContainsKey("failed") ? "<p class=\"error\" id=\"failed\">That is not this cluster's API token.</p>" : ""));
        app.MapPost(Prefix + "/login", async (HttpContext context) =>
        {
            // Anyone may post here: a small URL-encoded form only, read within a few kilobytes.
            if (!string.Equals(context.Request.ContentType?.Split(';')[0].Trim(), "application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
                return Results.StatusCode(StatusCodes.Status415UnsupportedMediaType);
            if (context.Request.ContentLength is null or > LoginBodyLimit) return Results.StatusCode(StatusCodes.Status413PayloadTooLarge);
            if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                limit.MaxRequestBodySize = LoginBodyLimit;
            IFormCollection form;
            try { form = await context.Request.ReadFormAsync(new FormOptions { ValueLengthLimit = LoginBodyLimit, ValueCountLimit = 4 }); }
            catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException or IOException) { return Results.BadRequest(); }
            var given = form["token"].ToString();
            if (given.Length is 0 or > 512 || !token.Accepts("Bearer " + given)) return Results.Redirect(Prefix + "/?failed=1");
            context.Response.Cookies.Append(UiSessions.Cookie, sessions.Start(), new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = context.Request.IsHttps,
                Path = "/",
                MaxAge = UiSessions.Lifetime,
            });
            return Results.Redirect(Prefix + "/");
        }).DisableAntiforgery();
        app.MapPost(Prefix + "/logout", (HttpContext context) =>
        {
            sessions.End(context.Request.Cookies[UiSessions.Cookie]);
            context.Response.Cookies.Delete(UiSessions.Cookie, new CookieOptions { Path = "/" });
            return Results.Redirect(Prefix + "/");
        }).DisableAntiforgery();
        app.MapGet(Prefix + "/assets/{name}", (string name, HttpContext context) =>
        {
            if (!Assets.TryGetValue(name, out var asset)) return Results.NotFound();
            Secure(context);
            return Results.Stream(Assembly.GetManifestResourceStream(asset.Resource)!, asset.Type);
        });
    }

    private static IResult Page(HttpContext context, string resource, string? failed = null)
    {
        Secure(context);
        context.Response.Headers.CacheControl = "no-store";
        if (failed is null) return Results.Stream(Assembly.GetManifestResourceStream(resource)!, "text/html; charset=utf-8");
        using var reader = new StreamReader(Assembly.GetManifestResourceStream(resource)!);
        return Results.Content(reader.ReadToEnd().Replace("<!--failed-->", failed), "text/html; charset=utf-8");
    }

    /// <summary>Only our own files run, nothing frames the page, and nothing is sniffed into another type.</summary>
    private static void Secure(HttpContext context)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
    }
}
