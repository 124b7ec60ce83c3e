using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Logging;
using Polly;
using Polly.Retry;

namespace ModelCar.Common.Http;

/// <summary>
/// The one retry policy (Polly.Core): 408, 429, 500, 502, 503, 504 and network errors, exponential
/// backoff with jitter, honouring Retry-After (seconds or date) and the Hub's RateLimit "t=N".
/// 4xx answers that will not change (401 with a bad password, 404, 413) are not retried.
/// Callers create the request inside the callback, so every attempt sends a fresh request.
/// </summary>
public static partial class HttpRetry
{
    public static readonly TimeSpan MaxServerDelay = TimeSpan.FromMinutes(5);

    public static ResiliencePipeline<HttpResponseMessage> Create(int maxRetries, TimeSpan baseDelay, ILogger logger)
    {
        if (maxRetries <= 0)
        {
            return ResiliencePipeline<HttpResponseMessage>.Empty;
        }
        return new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = maxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = baseDelay,
                MaxDelay = TimeSpan.FromSeconds(30),
                ShouldHandle = args => ValueTask.FromResult(ShouldRetry(args.Outcome, args.Context.CancellationToken)),
                DelayGenerator = args => ValueTask.FromResult(args.Outcome.Result is { } r ? ServerDelay(r) : null),
                OnRetry = args =>
                {
                    string why = args.Outcome.Result is { } r
                        ? $"{(int)r.StatusCode} {r.ReasonPhrase} from {Redactor.Url(r.RequestMessage?.RequestUri)}"
                        : Cli.ToolApp.Describe(args.Outcome.Exception!);
                    logger.LogWarning("retry {Attempt}/{Max} in {Delay:0.0} s after {Why}", args.AttemptNumber + 1, maxRetries, args.RetryDelay.TotalSeconds, why);
                    args.Outcome.Result?.Dispose();
                    return default;
                },
            })
            .Build();
    }

    public static bool IsTransient(HttpStatusCode status) => status is HttpStatusCode.RequestTimeout
        or HttpStatusCode.TooManyRequests or HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway
        or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    public static bool IsTransient(Exception e, CancellationToken callerToken) => !HasPermanentCause(e) && e switch
    {
        HttpRequestException { StatusCode: null } => true,
        HttpRequestException { StatusCode: { } s } => IsTransient(s),
        IOException => true,
        TimeoutException => true,
        OperationCanceledException => !callerToken.IsCancellationRequested, // a stall/headers timeout, not Ctrl-C
        _ => false,
    };

    /// <summary>A <see cref="Cli.ToolException"/> anywhere in the chain (bad source data, missing file) never heals by retrying.</summary>
    public static bool HasPermanentCause(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is Cli.ToolException)
            {
                return true;
            }
        }
        return false;
    }

    private static bool ShouldRetry(Outcome<HttpResponseMessage> outcome, CancellationToken ct) =>
        outcome.Exception is { } e ? IsTransient(e, ct) : outcome.Result is { } r && IsTransient(r.StatusCode);

    /// <summary>The delay the server asked for (Retry-After or RateLimit t=), capped; null if none.</summary>
    public static TimeSpan? ServerDelay(HttpResponseMessage response)
    {
        TimeSpan? delay = null;
        var ra = response.Headers.RetryAfter;
        if (ra?.Delta is { } d)
        {
            delay = d;
        }
        else if (ra?.Date is { } date)
        {
            delay = date - DateTimeOffset.UtcNow;
        }
        else if (response.Headers.TryGetValues("RateLimit", out var values))
        {
            var m = RateLimitReset().Match(string.Join(",", values));
            if (m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int t))
            {
                delay = TimeSpan.FromSeconds(t + 1);
            }
        }
        if (delay is null)
        {
            return null;
        }
        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay > MaxServerDelay ? MaxServerDelay : delay;
    }

    [GeneratedRegex(@"\bt=(\d+)")]
    private static partial Regex RateLimitReset();
}
