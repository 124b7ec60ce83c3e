using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace ModelCar.Common.IO;

/// <summary>
/// Byte progress for long transfers: on a terminal a live line on stderr; otherwise (Tekton logs)
/// a log line every few seconds with bytes done, total and MB/s, so a long step shows it is alive.
/// </summary>
public sealed class ProgressReporter : IDisposable
{
    private readonly ILogger _logger;
    private readonly string _verb;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Timer _timer;
    private readonly bool _tty;
    private long _done;
    private long _total;
    private int _disposed;

    public ProgressReporter(ILogger logger, string verb, long total, TimeSpan? interval = null, bool? tty = null)
    {
        _logger = logger;
        _verb = verb;
        _total = total;
        _tty = tty ?? (!Console.IsErrorRedirected && Environment.GetEnvironmentVariable("CI") is null);
        var period = interval ?? (_tty ? TimeSpan.FromMilliseconds(500) : TimeSpan.FromSeconds(5));
        _timer = new Timer(_ => Report(final: false), null, period, period);
    }

    public long Done => Interlocked.Read(ref _done);

    public void Add(long bytes) => Interlocked.Add(ref _done, bytes);

    public void AddTotal(long bytes) => Interlocked.Add(ref _total, bytes);

    private void Report(bool final)
    {
        long done = Done;
        long total = Interlocked.Read(ref _total);
        double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
        double mbps = done / seconds / 1e6;
        string pct = total > 0 ? $" ({100.0 * done / total:0}%)" : string.Empty;
        string line = $"{_verb}: {SizeParser.Format(done)} / {SizeParser.Format(total)}{pct}, {mbps:0.0} MB/s";
        if (_tty)
        {
            Console.Error.Write("\r" + line.PadRight(72) + (final ? "\n" : string.Empty));
        }
        else if (final || done > 0)
        {
            _logger.LogInformation("{Progress}", line);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        _timer.Dispose();
        if (_tty)
        {
            Report(final: true);
        }
    }
}
