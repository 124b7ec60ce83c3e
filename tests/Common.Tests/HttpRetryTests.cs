using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.TestSupport;

namespace ModelCar.Common.Tests;

public class HttpRetryTests
{
    private static async Task<(HttpStatusCode Status, int Calls)> Run(params HttpStatusCode[] answers)
    {
        int i = 0;
        var fake = new FakeHttpHandler((_, _) => Task.FromResult(new HttpResponseMessage(answers[Math.Min(i++, answers.Length - 1)])));
        using var client = HttpClientFactory.Create(new HttpSettings(), fake);
        var pipeline = HttpRetry.Create(4, TimeSpan.FromMilliseconds(1), NullLogger.Instance);
        using var response = await pipeline.ExecuteAsync(async ct => await client.GetAsync("http://fake/x", ct));
        return (response.StatusCode, fake.Calls.Count);
    }

    [Fact]
    public async Task Transient_statuses_are_retried_until_success()
    {
        var (status, calls) = await Run(HttpStatusCode.ServiceUnavailable, HttpStatusCode.TooManyRequests, HttpStatusCode.BadGateway, HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(4, calls);
    }

    [Theory]
    [InlineData(HttpStatusCode.Unauthorized)]
    [InlineData(HttpStatusCode.NotFound)]
    [InlineData(HttpStatusCode.RequestEntityTooLarge)]
    public async Task Permanent_statuses_are_not_retried(HttpStatusCode code)
    {
        var (status, calls) = await Run(code, HttpStatusCode.OK);
        Assert.Equal(code, status);
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task Gives_up_after_max_retries()
    {
        var (status, calls) = await Run(HttpStatusCode.InternalServerError);
        Assert.Equal(HttpStatusCode.InternalServerError, status);
        Assert.Equal(5, calls);
    }

    [Fact]
    public void Retry_after_and_ratelimit_headers_set_the_delay()
    {
        var r = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        r.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(7));
        Assert.Equal(TimeSpan.FromSeconds(7), HttpRetry.ServerDelay(r));
        var h = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        h.Headers.TryAddWithoutValidation("RateLimit", "\"resolvers\";r=0;t=12");
        Assert.Equal(TimeSpan.FromSeconds(13), HttpRetry.ServerDelay(h));
        Assert.Null(HttpRetry.ServerDelay(new HttpResponseMessage(HttpStatusCode.ServiceUnavailable)));
    }

    [Fact]
    public async Task Network_errors_are_retried_but_tool_errors_are_not()
    {
        int calls = 0;
        var fake = new FakeHttpHandler((_, _) => ++calls < 3 ? throw new HttpRequestException("connection reset") : Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)));
        using var client = HttpClientFactory.Create(new HttpSettings(), fake);
        var pipeline = HttpRetry.Create(4, TimeSpan.FromMilliseconds(1), NullLogger.Instance);
        using var ok = await pipeline.ExecuteAsync(async ct => await client.GetAsync("http://fake/x", ct));
        Assert.Equal(3, calls);

        Assert.False(HttpRetry.IsTransient(new HttpRequestException("copy failed", new ModelCar.Common.InputFileException("bad source")), default));
    }

    private static HttpResponseMessage TooMany(int seconds)
    {
        var r = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        r.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(seconds));
        return r;
    }

    [Fact]
    public async Task A_server_asking_to_wait_longer_than_the_cap_fails_at_once_saying_what_it_asked()
    {
        var fake = new FakeHttpHandler((_, _) => Task.FromResult(TooMany(100_000)));
        using var client = HttpClientFactory.Create(new HttpSettings(), fake);
        var pipeline = HttpRetry.Create(new HttpSettings { MaxRetries = 5, RetryBaseDelay = TimeSpan.FromMilliseconds(1) }, NullLogger.Instance);
        var run = pipeline.ExecuteAsync(async ct => await client.GetAsync("http://fake/x?sig=SECRET", ct)).AsTask();
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(10)))); // no 5-minute (or 100000 s) wait
        var e = await Assert.ThrowsAsync<RetryWaitTooLongException>(() => run);
        Assert.Single(fake.Calls);
        Assert.Equal("GET http://fake/x?sig=***: 429 Too Many Requests: the server asks to wait 100000 s before retrying, more than the 60 s limit", e.Message);
        Assert.False(HttpRetry.IsTransient(e, default)); // never retried by an outer loop either
    }

    [Fact]
    public async Task A_wait_within_a_configured_cap_is_honoured()
    {
        int calls = 0;
        var fake = new FakeHttpHandler((_, _) => Task.FromResult(++calls == 1 ? TooMany(1) : new HttpResponseMessage(HttpStatusCode.OK)));
        using var client = HttpClientFactory.Create(new HttpSettings(), fake);
        var pipeline = HttpRetry.Create(new HttpSettings { MaxRetries = 2, RetryBaseDelay = TimeSpan.FromMilliseconds(1), MaxRetryWait = TimeSpan.FromSeconds(2) }, NullLogger.Instance);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var ok = await pipeline.ExecuteAsync(async ct => await client.GetAsync("http://fake/x", ct));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"waited {clock.Elapsed}");
        // and a cap of 0 refuses any server-requested wait
        var strict = HttpRetry.Create(new HttpSettings { MaxRetries = 2, MaxRetryWait = TimeSpan.Zero }, NullLogger.Instance);
        calls = 0;
        await Assert.ThrowsAsync<RetryWaitTooLongException>(async () => await strict.ExecuteAsync(async ct => await client.GetAsync("http://fake/x", ct)));
    }

    [Fact]
    public void Backoff_is_exponential_with_jitter_and_capped()
    {
        var b = TimeSpan.FromMilliseconds(100);
        Assert.InRange(HttpRetry.Backoff(0, b).TotalMilliseconds, 80, 120);
        Assert.InRange(HttpRetry.Backoff(3, b).TotalMilliseconds, 640, 960);
        Assert.InRange(HttpRetry.Backoff(50, b).TotalSeconds, 24, 36);
    }

    [Fact]
    public async Task The_polly_pipeline_waits_the_shared_exponential_backoff_not_pollys_own()
    {
        // Polly's own exponential jitter (decorrelated) spreads far beyond ±20 %: 3 runs × 5 retries would not all fit
        var baseDelay = TimeSpan.FromMilliseconds(5);
        for (int run = 0; run < 3; run++)
        {
            var log = new RetryLog();
            var fake = new FakeHttpHandler((_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.ServiceUnavailable)));
            using var client = HttpClientFactory.Create(new HttpSettings(), fake);
            var pipeline = HttpRetry.Create(5, baseDelay, log);
            using var response = await pipeline.ExecuteAsync(async ct => await client.GetAsync("http://fake/x", ct));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal(6, fake.Calls.Count);
            Assert.Equal(5, log.Lines.Count);
            RetryLog.AssertBackoff(log.Lines.Select(l => l.Delay), baseDelay);
            Assert.StartsWith("retry 1/5 in ", log.Lines.First().Text);
        }
    }
}
