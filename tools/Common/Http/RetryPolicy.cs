using Microsoft.Extensions.Logging;
using ModelCar.Common.Logging;
using Polly;
using Polly.Retry;

namespace ModelCar.Common.Http;

/// <summary>
/// The one retry/backoff policy of every tool: how many retries (<see cref="MaxRetries"/> after the first
/// failure, counted in a row), which delay (the server's Retry-After / RateLimit within
/// <see cref="MaxRetryWait"/>, else <see cref="HttpRetry.Backoff"/>: exponential from <see cref="BaseDelay"/>,
/// ±20 % jitter, at most <see cref="HttpRetry.MaxBackoff"/>) and the one log line per retry.
/// <para>
/// Two uses, one rule. A request that can simply be sent again goes through <see cref="Pipeline"/>
/// (Polly; its delays come from <see cref="DelayFor"/>, so Polly's own backoff is never used). A loop that
/// recovers a body transfer itself (a cut upload or download continues from an offset, which a resent
/// request cannot do) keeps its resume logic and takes its decisions from a <see cref="RetryBudget"/>
/// (<see cref="Begin"/>): whether another attempt is allowed, how long to wait, what to log.
/// </para>
/// </summary>
public sealed class RetryPolicy
{
    private readonly ILogger _logger;
    private ResiliencePipeline<HttpResponseMessage>? _pipeline;

    public RetryPolicy(int maxRetries, TimeSpan baseDelay, TimeSpan maxRetryWait, ILogger logger)
    {
        MaxRetries = Math.Max(maxRetries, 0);
        BaseDelay = baseDelay;
        MaxRetryWait = maxRetryWait;
        _logger = logger;
    }

    /// <summary>The policy of <paramref name="settings"/> (<c>--retries</c>, <c>--max-retry-wait</c>, the base delay).</summary>
    public static RetryPolicy From(HttpSettings settings, ILogger logger) =>
        new(settings.MaxRetries, settings.RetryBaseDelay, settings.MaxRetryWait, logger);

    /// <summary>Retries after the first failure (failures in a row, without progress in between).</summary>
    public int MaxRetries { get; }

    /// <summary>Delay of the first retry; doubled per retry.</summary>
    public TimeSpan BaseDelay { get; }

    /// <summary>The longest wait a server may ask for; more throws <see cref="RetryWaitTooLongException"/>.</summary>
    public TimeSpan MaxRetryWait { get; }

    /// <summary>The Polly pipeline for requests that are simply sent again (the callback builds a fresh request); built on first use.</summary>
    public ResiliencePipeline<HttpResponseMessage> Pipeline => _pipeline ??= CreatePipeline(); // a race builds two equal pipelines: harmless

    /// <summary>A fresh failure counter for one transfer.</summary>
    public RetryBudget Begin(string what) => new(this, what);

    /// <summary>
    /// The wait before retry number <paramref name="retry"/> (0 = the first): the server's requested delay
    /// when <paramref name="response"/> carries one within <see cref="MaxRetryWait"/> (more disposes the
    /// response and throws <see cref="RetryWaitTooLongException"/>), else the backoff.
    /// </summary>
    public TimeSpan DelayFor(int retry, HttpResponseMessage? response = null) =>
        (response is null ? null : HttpRetry.CheckServerDelay(response, MaxRetryWait)) ?? HttpRetry.Backoff(retry, BaseDelay);

    /// <summary>The wait before retry number <paramref name="retry"/> when the server's delay was already read (and checked) from its answer.</summary>
    public TimeSpan DelayFor(int retry, TimeSpan? serverDelay) => serverDelay ?? HttpRetry.Backoff(retry, BaseDelay);

    /// <summary>The one retry log line: "[WHAT: ]retry N/MAX in D s after WHY[; THEN]".</summary>
    internal void LogRetry(string? what, int retry, TimeSpan delay, string why, string? then)
    {
        if (what is null)
        {
            _logger.LogWarning("retry {Attempt}/{Max} in {Delay:0.0} s after {Why}", retry + 1, MaxRetries, delay.TotalSeconds, why);
        }
        else if (then is null)
        {
            _logger.LogWarning("{What}: retry {Attempt}/{Max} in {Delay:0.0} s after {Why}", what, retry + 1, MaxRetries, delay.TotalSeconds, why);
        }
        else
        {
            _logger.LogWarning("{What}: retry {Attempt}/{Max} in {Delay:0.0} s after {Why}; {Then}", what, retry + 1, MaxRetries, delay.TotalSeconds, why, then);
        }
    }

    private ResiliencePipeline<HttpResponseMessage> CreatePipeline()
    {
        if (MaxRetries <= 0)
        {
            return ResiliencePipeline<HttpResponseMessage>.Empty;
        }
        return new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = BaseDelay,
                MaxDelay = HttpRetry.MaxBackoff,
                ShouldHandle = args =>
                {
                    bool retry = HttpRetry.ShouldRetry(args.Outcome, args.Context.CancellationToken);
                    if (retry && args.Outcome.Result is { } r)
                    {
                        HttpRetry.CheckServerDelay(r, MaxRetryWait); // throws (and disposes r) when the server asks for more than the cap
                    }
                    return ValueTask.FromResult(retry);
                },
                // always ours: the same backoff and Retry-After rule as the transfer loops (Polly's own jitter is not used)
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(DelayFor(args.AttemptNumber, args.Outcome.Result is { } r ? HttpRetry.ServerDelay(r) : null)),
                OnRetry = args =>
                {
                    string why = args.Outcome.Result is { } r
                        ? $"{(int)r.StatusCode} {r.ReasonPhrase} from {Redactor.Url(r.RequestMessage?.RequestUri)}"
                        : ErrorText.Describe(args.Outcome.Exception!);
                    LogRetry(null, args.AttemptNumber, args.RetryDelay, why, null);
                    args.Outcome.Result?.Dispose();
                    return default;
                },
            })
            .Build();
    }
}

/// <summary>
/// The failure counter of one transfer loop under the <see cref="RetryPolicy"/>: at most
/// <see cref="RetryPolicy.MaxRetries"/> retries in a row; progress (bytes the other side kept) starts the
/// count again, so a long transfer cut now and then is not a run of failures. Not thread-safe (one loop).
/// </summary>
public sealed class RetryBudget(RetryPolicy policy, string what)
{
    /// <summary>Failures in a row so far.</summary>
    public int Failures { get; private set; }

    /// <summary>Failures recovered from in all (not reset by progress).</summary>
    public int Retries { get; private set; }

    public RetryPolicy Policy => policy;

    /// <summary>The transfer got further: the next failure is the first of a new run.</summary>
    public void Progressed() => Failures = 0;

    /// <summary>Counts one failure; false when no retry is left (the caller fails with the error).</summary>
    public bool TryFail()
    {
        Failures++;
        if (Failures > policy.MaxRetries)
        {
            return false;
        }
        Retries++;
        return true;
    }

    /// <summary>True when the budget is spent (after <see cref="TryFail"/> returned false).</summary>
    public bool Exhausted => Failures > policy.MaxRetries;

    /// <summary>
    /// After <see cref="TryFail"/>: logs the one retry line (with <paramref name="then"/>, what the loop does
    /// next) and waits the policy's delay (<paramref name="serverDelay"/>, the server's Retry-After already
    /// checked against the cap, else the backoff for this retry). A loop that learns only after the wait
    /// whether the other side got further (an upload asks its session) may wait with the budget spent: then
    /// there is no retry line, and the loop fails unless it calls <see cref="Progressed"/>.
    /// </summary>
    public Task WaitAsync(string why, string? then, TimeSpan? serverDelay, CancellationToken ct)
    {
        var delay = policy.DelayFor(Failures - 1, serverDelay);
        if (!Exhausted)
        {
            policy.LogRetry(what, Failures - 1, delay, why, then);
        }
        return Task.Delay(delay, ct);
    }
}
