using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace ModelCar.Common.Logging;

/// <summary>The log formats on stderr (--log-format in the tools).</summary>
public enum LogFormat
{
    Text,
    Json,
}

/// <summary>
/// Console logging on stderr (Microsoft.Extensions.Logging.Console), text or JSON, with every
/// message passed through <see cref="Redactor"/>. stdout is kept for results.
/// </summary>
public static class LogSetup
{
    public static ILoggerFactory CreateFactory(LogFormat format, bool verbose, TextWriter? stderr = null)
    {
        var inner = LoggerFactory.Create(builder =>
        {
            builder.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
            builder.AddFilter("System.Net.Http", LogLevel.Warning);
            builder.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            if (format == LogFormat.Json)
            {
                builder.AddJsonConsole(o =>
                {
                    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                    o.UseUtcTimestamp = true;
                    o.IncludeScopes = false;
                });
            }
            else
            {
                builder.AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.TimestampFormat = "HH:mm:ss ";
                    o.ColorBehavior = LoggerColorBehavior.Disabled;
                    o.IncludeScopes = false;
                });
            }
        });
        return new RedactingLoggerFactory(inner);
    }

    private sealed class RedactingLoggerFactory(ILoggerFactory inner) : ILoggerFactory
    {
        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName));

        public void Dispose() => inner.Dispose();
    }

    private sealed class RedactingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel))
            {
                return;
            }
            string message = Redactor.Redact(formatter(state, exception));
            if (exception is not null)
            {
                // the exception is rendered here (redacted) instead of by the console formatter
                message += " | " + Redactor.Redact(inner.IsEnabled(LogLevel.Debug) ? exception.ToString() : ErrorText.Describe(exception));
            }
            inner.Log(logLevel, eventId, message, null, static (s, _) => s);
        }
    }
}
