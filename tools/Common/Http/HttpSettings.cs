namespace ModelCar.Common.Http;

/// <summary>Connection settings shared by every tool's HTTP client.</summary>
public sealed record HttpSettings
{
    /// <summary>Verify TLS certificates (default). False also allows plain http://, like skopeo.</summary>
    public bool TlsVerify { get; init; } = true;

    /// <summary>Extra PEM files with root certificates to trust (e.g. the OpenShift service CA).</summary>
    public IReadOnlyList<string> CaFiles { get; init; } = [];

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Default of <see cref="StallTimeout"/> (every tool's <c>--stall-timeout</c>).</summary>
    public static readonly TimeSpan DefaultStallTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Default of <see cref="MaxRetryWait"/> (every tool's <c>--max-retry-wait</c>).</summary>
    public static readonly TimeSpan DefaultMaxRetryWait = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Abort a body transfer that makes no progress for this long (instead of a total cap). hf-fetch
    /// also waits at most this long for response headers (a server that accepts and never answers).
    /// </summary>
    public TimeSpan StallTimeout { get; init; } = DefaultStallTimeout;

    /// <summary>
    /// The longest wait a server may ask for (Retry-After, RateLimit t=) before a retry; a server
    /// asking for more fails the request at once (<see cref="RetryWaitTooLongException"/>).
    /// </summary>
    public TimeSpan MaxRetryWait { get; init; } = DefaultMaxRetryWait;

    /// <summary>Time to wait for response headers of a request without a large body.</summary>
    public TimeSpan HeadersTimeout { get; init; } = TimeSpan.FromMinutes(5);

    public int MaxRetries { get; init; } = 5;

    /// <summary>First retry delay; doubled per attempt with jitter (capped at 30 s).</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public string UserAgent { get; init; } = "modelcar-tools/" + (typeof(HttpSettings).Assembly.GetName().Version?.ToString(3) ?? "0");

    /// <summary>Test hook: overrides the retry base delay (milliseconds) from the environment.</summary>
    public static TimeSpan DefaultRetryBaseDelay()
    {
        var env = Environment.GetEnvironmentVariable("MODELCAR_RETRY_BASE_DELAY_MS");
        return int.TryParse(env, out int ms) && ms >= 0 ? TimeSpan.FromMilliseconds(ms) : TimeSpan.FromSeconds(1);
    }
}
