using System.Net;
using PuppeteerSharp;

namespace Orchestrator.IntegrationTests;

/// <summary>A coordinator and two workers for the web page's tests.</summary>
public sealed class WebPageCluster : IDisposable
{
    public LocalCluster Cluster { get; } = LocalCluster.Up(workers: 2);
    public void Dispose() => Cluster.Dispose();
}

/// <summary>
/// The web page on the job API, driven in Debian's headless chromium (installed by .ci/run; the tests are skipped, saying
/// so, where it is missing). The page's HTTPS certificate is the cluster's own (its CA is not the browser's), so the
/// browser is told to accept it; the API client's own checks of it are tested elsewhere.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class WebPageTests(WebPageCluster fixture) : IClassFixture<WebPageCluster>
{
    private const string Chromium = "/usr/bin/chromium";
    private static readonly TimeSpan JobTimeout = TimeSpan.FromSeconds(240);
    private readonly LocalCluster _cluster = fixture.Cluster;

    /// <summary>Where the screenshot goes (kept after the test: the run folder is not): $ORCH_TEST_ARTIFACTS or a temp folder.</summary>
    private static string Artifacts => Directory.CreateDirectory(Environment.GetEnvironmentVariable("ORCH_TEST_ARTIFACTS")
        ?? Path.Combine(Path.GetTempPath(), "orchestrator-test-artifacts")).FullName;

    /// <summary>
    /// Signs in to <paramref name="cluster"/>'s web page in a fresh browser and opens job <paramref name="id"/>'s page; returns
    /// the loss chart's step range once it has data (for a test elsewhere: the charts of a job whose coordinator restarted).
    /// </summary>
    public static async Task<(long First, long Last, int Points)> LossChartOf(LocalCluster cluster, string id)
    {
        await using var browser = await Browser();
        var page = await browser.NewPageAsync();
        var env = cluster.ClientEnv();
        await page.GoToAsync(env["ORCHESTRATOR_CONTACT"].TrimEnd('/') + "/ui/");
        await page.TypeAsync("#token", env["ORCHESTRATOR_TOKEN"]);
        await Task.WhenAll(page.WaitForNavigationAsync(), page.ClickAsync("button[type=submit]"));
        await page.GoToAsync(env["ORCHESTRATOR_CONTACT"].TrimEnd('/') + "/ui/#/jobs/" + Uri.EscapeDataString(id));
        await page.WaitForFunctionAsync("() => Number(document.querySelector('#loss-chart')?.dataset.points) > 0 && document.querySelector('#loss-chart canvas')",
            new WaitForFunctionOptions { Timeout = 30_000 });
        // uPlot keeps the data it draws: the steps on the chart's x axis.
        var steps = await page.EvaluateExpressionAsync<long[]>("Array.from(document.querySelector('#loss-chart').__steps || [])");
        var points = await page.EvaluateExpressionAsync<int>("Number(document.querySelector('#loss-chart').dataset.points)");
        return (steps.Length > 0 ? steps[0] : -1, steps.Length > 0 ? steps[^1] : -1, points);
    }

    private static async Task<IBrowser> Browser()
    {
        Skip.IfNot(File.Exists(Chromium), $"{Chromium} is not installed (apt-get install chromium; .ci/run does)");
        return await Puppeteer.LaunchAsync(new LaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            AcceptInsecureCerts = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            DefaultViewport = new ViewPortOptions { Width = 1280, Height = 1000 },
        });
    }

    [SkippableFact]
    public async Task A_logged_in_browser_sees_a_running_two_worker_job_with_live_charts_workers_checkpoints_and_its_log()
    {
        var id = _cluster.Submit(Jobs.Mlp("it-web", maxSteps: 5000, epochs: 10, workers: 2, batch: 32, checkpointEvery: 100));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() == "Running" && s.GetProperty("step").GetInt64() > 250, JobTimeout);
        var contact = _cluster.ClientEnv()["ORCHESTRATOR_CONTACT"].TrimEnd('/');
        try
        {
            await using var browser = await Browser();
            var page = await browser.NewPageAsync();
            // What the page's script says (errors above all), for the message of a wait that times out.
            var console = new System.Collections.Concurrent.ConcurrentQueue<string>();
            page.Console += (_, e) => console.Enqueue($"{e.Message.Type}: {e.Message.Text}");
            page.PageError += (_, e) => console.Enqueue($"page error: {e.Message}");
            async Task Until(string condition)
            {
                try { await page.WaitForFunctionAsync(condition, new WaitForFunctionOptions { Timeout = 30_000 }); }
                catch (WaitTaskTimeoutException)
                {
                    Assert.Fail($"not within 30 s: {condition}\nthe page's console:\n{string.Join("\n", console)}\n" +
                                await page.EvaluateExpressionAsync<string>("document.body.innerText"));
                }
            }
            await page.GoToAsync(contact + "/ui/");
            // A wrong token: the form again, saying so, and no session.
            await page.TypeAsync("#token", "not-the-token-at-all");
            await Task.WhenAll(page.WaitForNavigationAsync(), page.ClickAsync("button[type=submit]"));
            Assert.NotNull(await page.QuerySelectorAsync("#failed"));
            Assert.Empty(await page.GetCookiesAsync());

            await page.TypeAsync("#token", _cluster.ClientEnv()["ORCHESTRATOR_TOKEN"]);
            await Task.WhenAll(page.WaitForNavigationAsync(), page.ClickAsync("button[type=submit]"));
            var cookie = Assert.Single(await page.GetCookiesAsync());
            Assert.Equal("orchestrator-session", cookie.Name);
            Assert.True(cookie.HttpOnly);
            Assert.True(cookie.Secure);
            Assert.Equal(SameSite.Strict, cookie.SameSite);
            Assert.DoesNotContain(_cluster.ClientEnv()["ORCHESTRATOR_TOKEN"], cookie.Value);

            // The job list, then the job's page through its link.
            var link = $"a[href=\"#/jobs/{id}\"]";
            await page.WaitForSelectorAsync(link, new WaitForSelectorOptions { Timeout = 15_000 });
            await page.ClickAsync(link);
            // Live: the loss chart has data and grows while the page is open; both workers' throughput; a checkpoint with
            // its held-out metrics; log lines of both ranks.
            await Until("() => Number(document.querySelector('#loss-chart')?.dataset.points) > 3 && document.querySelector('#loss-chart canvas')");
            var first = await page.EvaluateExpressionAsync<int>("Number(document.querySelector('#loss-chart').dataset.points)");
            await Until($"() => Number(document.querySelector('#loss-chart').dataset.points) > {first}");
            await Until("() => document.querySelectorAll('#throughput-chart .u-legend .u-series').length === 3 && Number(document.querySelector('#heldout-chart').dataset.points) >= 1");
            await Until("() => /rank 0 /.test(document.querySelector('#logs').textContent) && /rank 1 /.test(document.querySelector('#logs').textContent)");
            Assert.Equal("Running", await page.EvaluateExpressionAsync<string>("document.querySelector('#job-state').textContent"));
            var text = await page.EvaluateExpressionAsync<string>("document.body.innerText");
            Assert.Contains("accuracy", text);   // the checkpoints table's held-out metric
            Assert.Contains(_cluster.Address("worker-1").Split('@')[1], text);
            Assert.Contains(_cluster.Address("worker-2").Split('@')[1], text);

            var screenshot = Path.Combine(Artifacts, "web-job-page.png");
            await page.ScreenshotAsync(screenshot, new ScreenshotOptions { FullPage = true });
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(screenshot)[..4]);
            Console.WriteLine($"web page of running job {id} ({first}+ points when first seen): {screenshot}");
        }
        finally
        {
            _cluster.Client("cancel", id);
        }
    }

    [SkippableFact]
    public async Task Without_a_login_the_page_shows_nothing_of_the_jobs_and_a_session_cannot_change_anything()
    {
        var id = _cluster.Submit(Jobs.Mlp("it-web-secret", maxSteps: 50));
        _cluster.WaitFor(id, s => s.GetProperty("state").GetString() is "Completed" or "Failed", JobTimeout);
        var contact = _cluster.ClientEnv()["ORCHESTRATOR_CONTACT"].TrimEnd('/');

        await using (var browser = await Browser())
        {
            var page = await browser.NewPageAsync();
            await page.GoToAsync($"{contact}/ui/#/jobs/{id}");
            var html = await page.GetContentAsync();
            Assert.NotNull(await page.QuerySelectorAsync("#token"));
            Assert.DoesNotContain(id, html.Replace($"#/jobs/{id}", ""));
            Assert.DoesNotContain("it-web-secret", html);
            // The API from this page, without a session: 401, nothing in the body.
            Assert.Equal(401, await page.EvaluateExpressionAsync<int>("fetch('/api/v1/jobs').then(r => r.status)"));
            Assert.Equal("", await page.EvaluateExpressionAsync<string>($"fetch('/api/v1/jobs/{id}/logs').then(r => r.text())"));
            // A made-up session cookie is no session.
            await page.SetCookieAsync(new CookieParam { Name = "orchestrator-session", Value = new string('A', 43), Url = contact });
            await page.ReloadAsync();
            Assert.NotNull(await page.QuerySelectorAsync("#token"));
        }

        // A real session reads, and only reads: a cancel or a submit with the cookie alone is refused (CSRF has nothing to ride on).
        using var raw = _cluster.Api(withToken: false, raw: true);
        var login = await raw.PostAsync("ui/login", new FormUrlEncodedContent([new("token", _cluster.ClientEnv()["ORCHESTRATOR_TOKEN"])]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        var session = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        Assert.Contains("httponly", login.Headers.GetValues("Set-Cookie").Single().ToLowerInvariant());
        var read = new HttpRequestMessage(HttpMethod.Get, $"api/v1/jobs/{id}");
        read.Headers.Add("Cookie", session);
        Assert.Equal(HttpStatusCode.OK, (await raw.SendAsync(read)).StatusCode);
        var cancel = new HttpRequestMessage(HttpMethod.Post, $"api/v1/jobs/{id}/cancel");
        cancel.Headers.Add("Cookie", session);
        Assert.Equal(HttpStatusCode.Unauthorized, (await raw.SendAsync(cancel)).StatusCode);
        var logout = new HttpRequestMessage(HttpMethod.Post, "ui/logout");
        logout.Headers.Add("Cookie", session);
        await raw.SendAsync(logout);
        var after = new HttpRequestMessage(HttpMethod.Get, $"api/v1/jobs/{id}");
        after.Headers.Add("Cookie", session);
        Assert.Equal(HttpStatusCode.Unauthorized, (await raw.SendAsync(after)).StatusCode);
    }
}
