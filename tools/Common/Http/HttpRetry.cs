using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Logging;
using Polly;

namespace ModelCar.Common.Http;

/// <summary>
/// The rules of the one retry policy (<see cref="RetryPolicy"/>, Polly.Core): 408, 429, 500, 502, 503, 504
/// and network errors, exponential backoff with jitter, honouring Retry-After (seconds or date) and the
/// Hub's RateLimit "t=N".
/// 4xx answers that will not change (401 with a bad password, 404, 413) are not retried.
/// Callers create the request inside the callback, so every attempt sends a fresh request.
/// A server-requested wait longer than the cap (<see cref="HttpSettings.MaxRetryWait"/>) is not
/// waited for: the request fails at once with <see cref="RetryWaitTooLongException"/>.
/// Loops that recover a body transfer themselves (a cut upload or download continues from an
/// offset, which a resent request cannot do) take their decisions and delays from a
/// <see cref="RetryBudget"/> of the same policy, so there is one backoff, one Retry-After rule, one
/// attempt count and one log line.
/// </summary>
public static partial class HttpRetry
{
    /// <summary>Upper bound of the exponential backoff between attempts.</summary>
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    public static ResiliencePipeline<HttpResponseMessage> Create(HttpSettings settings, ILogger logger) =>
        Create(settings.MaxRetries, settings.RetryBaseDelay, logger, settings.MaxRetryWait);

    /// <summary>The Polly pipeline of <see cref="RetryPolicy"/> (the one policy; this is a shorthand).</summary>
    public static ResiliencePipeline<HttpResponseMessage> Create(int maxRetries, TimeSpan baseDelay, ILogger logger, TimeSpan? maxRetryWait = null) =>
        new RetryPolicy(maxRetries, baseDelay, maxRetryWait ?? HttpSettings.DefaultMaxRetryWait, logger).Pipeline;

    public static bool IsTransient(HttpStatusCode status) => status is HttpStatusCode.RequestTimeout
        or HttpStatusCode.TooManyRequests or HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway
        or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    /// <summary>Worth another attempt: a network error, a timeout or a transient status, and never a decided failure
    /// (a <see cref="ModelCarException"/> anywhere in the chain, <see cref="ModelCarException.Find"/>: bad source data,
    /// a missing file, retries spent) nor the caller's own cancellation.</summary>
    public static bool IsTransient(Exception e, CancellationToken callerToken) => ModelCarException.Find(e) is null && e switch
    {
        HttpRequestException { StatusCode: null } => true,
        HttpRequestException { StatusCode: { } s } => IsTransient(s),
        IOException => true,
        TimeoutException => true,
        OperationCanceledException => !callerToken.IsCancellationRequested, // a stall/headers timeout, not Ctrl-C
        _ => false,
    };

    internal static bool ShouldRetry(Outcome<HttpResponseMessage> outcome, CancellationToken ct) =>
        outcome.Exception is { } e ? IsTransient(e, ct) : outcome.Result is { } r && IsTransient(r.StatusCode);

    /// <summary>
    /// The server's requested delay if it is within <paramref name="cap"/>; null if it asked for none.
    /// A longer request disposes the response and throws <see cref="RetryWaitTooLongException"/>.
    /// </summary>
    public static TimeSpan? CheckServerDelay(HttpResponseMessage response, TimeSpan cap)
    {
        var delay = ServerDelay(response);
        if (delay is { } d && d > cap)
        {
            var request = response.RequestMessage;
            var what = $"{request?.Method} {Redactor.Url(request?.RequestUri)}: {(int)response.StatusCode} {response.ReasonPhrase}";
            response.Dispose();
            throw new RetryWaitTooLongException(what, d, cap);
        }
        return delay;
    }

    /// <summary>Exponential backoff with jitter (±20 %): base × 2^attempt, at most <see cref="MaxBackoff"/>.</summary>
    public static TimeSpan Backoff(int attempt, TimeSpan baseDelay)
    {
        var ms = baseDelay.TotalMilliseconds * Math.Pow(2, Math.Clamp(attempt, 0, 10));
        ms = Math.Min(ms, MaxBackoff.TotalMilliseconds) * (0.8 + Random.Shared.NextDouble() * 0.4);
        return TimeSpan.FromMilliseconds(ms);
    }

    /// <summary>The delay the server asked for (Retry-After or RateLimit t=), not below zero; null if none.</summary>
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
        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay;
    }

    [GeneratedRegex(@"\bt=(\d+)")]
    private static partial Regex RateLimitReset();
}
