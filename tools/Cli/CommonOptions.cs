using System.CommandLine;
using System.CommandLine.Parsing;
using ModelCar.Common.Http;
using ModelCar.Common.IO;

namespace ModelCar.Common.Cli;

/// <summary>Option factories shared by several tools (TLS, sizes, repeated KEY=VALUE).</summary>
public static class CommonOptions
{
    public static Option<bool> TlsVerify() => new("--tls-verify")
    {
        Description = "Verify TLS certificates (default true); false also allows plain http://.",
        DefaultValueFactory = _ => true,
        Arity = ArgumentArity.ZeroOrOne,
    };

    public static Option<string[]> CaFile() => new("--ca-file")
    {
        Description = "PEM file with extra root certificates to trust (repeatable).",
        HelpName = "FILE",
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
    };

    public static Option<int> Retries(int defaultValue = 5) => new("--retries")
    {
        Description = $"Retries per request for 408/429/5xx and network errors (default {defaultValue}).",
        DefaultValueFactory = _ => defaultValue,
        Validators = { r => { if (r.GetValueOrDefault<int>() < 0) { r.AddError("--retries must be 0 or more"); } } },
    };

    public static Option<int> Jobs(int defaultValue = 4) => new("--jobs")
    {
        Description = $"How many transfers run at once (default {defaultValue}).",
        DefaultValueFactory = _ => defaultValue,
        Validators = { r => { if (r.GetValueOrDefault<int>() is < 1 or > 64) { r.AddError("--jobs must be between 1 and 64"); } } },
    };

    public const string StallTimeoutName = "--stall-timeout";

    public const string MaxRetryWaitName = "--max-retry-wait";

    /// <summary>Seconds without progress (no byte sent or received, no response headers) before a transfer is given up and retried.</summary>
    public static Option<int> StallTimeout() => Seconds(StallTimeoutName,
        $"Give up (and retry) a request that sends or receives nothing for SECONDS (default {HttpSettings.DefaultStallTimeout.TotalSeconds:0}).",
        (int)HttpSettings.DefaultStallTimeout.TotalSeconds, min: 1);

    /// <summary>The longest Retry-After a server may ask for; more fails at once.</summary>
    public static Option<int> MaxRetryWait() => Seconds(MaxRetryWaitName,
        $"Longest wait a server may ask for before a retry (Retry-After); a server asking for more fails at once (default {HttpSettings.DefaultMaxRetryWait.TotalSeconds:0}).",
        (int)HttpSettings.DefaultMaxRetryWait.TotalSeconds, min: 0);

    private static Option<int> Seconds(string name, string description, int defaultValue, int min) => new(name)
    {
        Description = description,
        HelpName = "SECONDS",
        DefaultValueFactory = _ => defaultValue,
        Validators = { r => { if (r.GetValueOrDefault<int>() < min) { r.AddError($"{name} must be {min} or more (seconds)"); } } },
    };

    /// <summary>
    /// How long to wait for another run to release the destination's lock (<see cref="FileLock"/>);
    /// without it a run waits as long as the other one takes (Tekton's task timeout still applies).
    /// </summary>
    public static Option<int?> LockTimeout() => new("--lock-timeout")
    {
        Description = "Seconds to wait while another run writes to the same destination, then fail (default: wait; 0 = fail at once).",
        HelpName = "SECONDS",
        Validators = { r => { if (r.GetValueOrDefault<int?>() is < 0) { r.AddError("--lock-timeout must be 0 or more seconds"); } } },
    };

    /// <summary>Takes the destination lock; a timeout names the option to change.</summary>
    public static async Task<FileLock> AcquireLockAsync(ToolContext ctx, Option<int?> lockTimeout, string path, string what, CancellationToken ct)
    {
        var seconds = ctx.ParseResult.GetValue(lockTimeout);
        try
        {
            return await FileLock.AcquireAsync(path, what, seconds is { } s ? TimeSpan.FromSeconds(s) : null, ctx.Logger, ct).ConfigureAwait(false);
        }
        catch (LockTimeoutException e)
        {
            throw new ToolException($"{e.Message}; wait longer with --lock-timeout, or let the other run finish", e);
        }
    }

    /// <summary>A size option accepting 1048576, 64M, 64MiB, 20G.</summary>
    public static Option<long?> Size(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "SIZE",
        CustomParser = ParseSize,
    };

    public const string ChunkSizeName = "--chunk-size";

    /// <summary>
    /// The smallest --chunk-size any tool takes: 1 MiB. Every chunk is one request (a Range GET, a PATCH), so a
    /// tiny one turns a model into millions of requests (<c>--chunk-size 1</c> never ended); 1 MiB keeps the
    /// defaults (32M Range chunks, 1G PATCH chunks) and every test size working.
    /// </summary>
    public const long MinChunkSize = 1L << 20;

    /// <summary>A --chunk-size option: a size of at least <see cref="MinChunkSize"/> (less is exit 2, one line).</summary>
    public static Option<long?> ChunkSize(string description) => new(ChunkSizeName)
    {
        Description = description,
        HelpName = "SIZE",
        CustomParser = ParseSize,
        Validators =
        {
            r =>
            {
                if (r.GetValueOrDefault<long?>() is { } bytes && bytes < MinChunkSize)
                {
                    r.AddError($"{ChunkSizeName} must be at least 1M ({MinChunkSize} bytes), not {bytes}: every chunk is one request");
                }
            },
        },
    };

    public static long? ParseSize(ArgumentResult result)
    {
        var token = result.Tokens.Count > 0 ? result.Tokens[0].Value : null;
        if (SizeParser.TryParse(token, out long bytes) && bytes > 0)
        {
            return bytes;
        }
        result.AddError($"'{token}' is not a size (examples: 1048576, 64M, 20G)");
        return null;
    }

    public static HttpSettings HttpSettingsFrom(ParseResult parse, Option<bool> tlsVerify, Option<string[]> caFiles, Option<int>? retries = null,
        Option<int>? stallTimeout = null, Option<int>? maxRetryWait = null) => new()
    {
        TlsVerify = parse.GetValue(tlsVerify),
        CaFiles = parse.GetValue(caFiles) ?? [],
        MaxRetries = retries is null ? 5 : parse.GetValue(retries),
        RetryBaseDelay = HttpSettings.DefaultRetryBaseDelay(),
        StallTimeout = stallTimeout is null ? HttpSettings.DefaultStallTimeout : TimeSpan.FromSeconds(parse.GetValue(stallTimeout)),
        MaxRetryWait = maxRetryWait is null ? HttpSettings.DefaultMaxRetryWait : TimeSpan.FromSeconds(parse.GetValue(maxRetryWait)),
    };
}
