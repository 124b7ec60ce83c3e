using System.Net;
using ModelCar.Common.Http;
using ModelCar.TestSupport;

namespace ModelCar.Common.Tests;

/// <summary>The one retry policy: the Polly pipeline and the transfer loops' budget share backoff, counting and log line.</summary>
public class RetryPolicyTests
{
    [Fact]
    public async Task A_transfer_budget_allows_max_retries_in_a_row_and_progress_starts_a_new_run()
    {
        var log = new RetryLog();
        var policy = new RetryPolicy(3, TimeSpan.FromMilliseconds(2), TimeSpan.FromSeconds(60), log);
        var budget = policy.Begin("model.bin");
        for (int i = 0; i < 3; i++)
        {
            Assert.True(budget.TryFail());
            await budget.WaitAsync("connection reset", "continuing with Range", null, CancellationToken.None);
        }
        budget.Progressed(); // the transfer got further: a cut now and then is not a run of failures
        for (int i = 0; i < 3; i++)
        {
            Assert.True(budget.TryFail());
            await budget.WaitAsync("connection reset", "continuing with Range", null, CancellationToken.None);
        }
        Assert.False(budget.TryFail());
        Assert.True(budget.Exhausted);
        Assert.Equal(4, budget.Failures);
        Assert.Equal(6, budget.Retries);
        var lines = log.Lines.ToList();
        Assert.Equal(6, lines.Count);
        // the same backoff as the pipeline, counted from the start of each run
        RetryLog.AssertBackoff(lines.Take(3).Select(l => l.Delay), policy.BaseDelay);
        RetryLog.AssertBackoff(lines.Skip(3).Select(l => l.Delay), policy.BaseDelay);
        Assert.StartsWith("model.bin: retry 1/3 in ", lines[0].Text);
        Assert.EndsWith(" s after connection reset; continuing with Range", lines[0].Text);
        Assert.StartsWith("model.bin: retry 3/3 in ", lines[2].Text);
        Assert.StartsWith("model.bin: retry 1/3 in ", lines[3].Text);
    }

    [Fact]
    public async Task A_server_delay_within_the_cap_replaces_the_backoff_and_one_beyond_it_fails_at_once()
    {
        var log = new RetryLog();
        var policy = new RetryPolicy(5, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2), log);
        var asked = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        asked.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromMilliseconds(1500));
        Assert.Equal(TimeSpan.FromMilliseconds(1500), policy.DelayFor(0, asked));
        var budget = policy.Begin("blob 0123456789ab");
        Assert.True(budget.TryFail());
        await budget.WaitAsync("503 Service Unavailable", null, TimeSpan.FromMilliseconds(1), CancellationToken.None);
        Assert.Equal(0.001, Assert.Single(log.Lines).Delay, 6); // the server's delay, not the 10 s backoff

        var tooLong = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { RequestMessage = new HttpRequestMessage(HttpMethod.Patch, "http://reg/v2/x/blobs/uploads/1") };
        tooLong.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(30));
        var e = Assert.Throws<RetryWaitTooLongException>(() => policy.DelayFor(0, tooLong));
        Assert.Equal("PATCH http://reg/v2/x/blobs/uploads/1: 503 Service Unavailable: the server asks to wait 30 s before retrying, more than the 2 s limit", e.Message);
    }

    [Fact]
    public void No_retries_means_an_empty_pipeline_and_an_empty_budget()
    {
        var policy = new RetryPolicy(0, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(60), new RetryLog());
        Assert.Same(Polly.ResiliencePipeline<HttpResponseMessage>.Empty, policy.Pipeline);
        Assert.False(policy.Begin("x").TryFail());
    }
}
