namespace ModelCar.Common.Http;

/// <summary>Connection settings shared by every tool's HTTP client.</summary>
public sealed record HttpSettings
{
    /// <summary>Verify TLS certificates (default). False also allows plain http://, like skopeo.</summary>
    public bool TlsVerify { get; init; } = true;

    /// <summary>Extra PEM files with root certificates to trust (e.g. the OpenShift service CA).</summary>
    public IReadOnlyList<string> CaFiles { get; init; } = [];

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Abort a body transfer that makes no progress for this long (instead of a total cap).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(120);

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
