using System.Globalization;

namespace ModelCar.Common.Http;

/// <summary>
/// A server asked to wait longer before a retry (Retry-After, RateLimit t=) than the tool waits
/// (<see cref="HttpSettings.MaxRetryWait"/>): the request fails at once, saying what was asked.
/// Never retried in-process (it is a <see cref="ModelCarException"/>); transient: a later run may not be asked to wait.
/// </summary>
public sealed class RetryWaitTooLongException(string request, TimeSpan requested, TimeSpan limit)
    : ModelCarException($"{request}: the server asks to wait {Seconds(requested)} s before retrying, more than the {Seconds(limit)} s limit", transient: true)
{
    public TimeSpan Requested { get; } = requested;

    public TimeSpan Limit { get; } = limit;

    private static string Seconds(TimeSpan t) => Math.Ceiling(t.TotalSeconds).ToString("0", CultureInfo.InvariantCulture);
}
