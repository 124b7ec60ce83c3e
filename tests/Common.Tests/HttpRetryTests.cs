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

        Assert.False(HttpRetry.IsTransient(new HttpRequestException("copy failed", new ModelCar.Common.Cli.ToolException("bad source")), default));
    }
}
