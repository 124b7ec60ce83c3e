using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace ModelCar.Common.Tests;

/// <summary>Keeps each retry line's text and its structured Delay (seconds).</summary>
internal sealed class RetryLog : ILogger
{
    /// <summary>Each delay is base × 2^retry within ±20 % (the shared backoff).</summary>
    public static void AssertBackoff(IEnumerable<double> delaysSeconds, TimeSpan baseDelay)
    {
        int retry = 0;
        foreach (var seconds in delaysSeconds)
        {
            double expected = baseDelay.TotalSeconds * Math.Pow(2, retry);
            Assert.InRange(seconds, expected * 0.8 - 1e-9, expected * 1.2 + 1e-9);
            retry++;
        }
    }

    public ConcurrentQueue<(string Text, double Delay)> Lines { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        double delay = double.NaN;
        if (state is IReadOnlyList<KeyValuePair<string, object?>> values && values.FirstOrDefault(kv => kv.Key == "Delay").Value is double d)
        {
            delay = d;
        }
        Lines.Enqueue((formatter(state, exception), delay));
    }
}

