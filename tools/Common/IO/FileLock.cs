using Microsoft.Extensions.Logging;

namespace ModelCar.Common.IO;

/// <summary>Another run held the lock for longer than the caller was willing to wait.</summary>
public sealed class LockTimeoutException(string message) : ModelCarException(message);

/// <summary>
/// An advisory, exclusive lock on a file (one writer per destination directory): held from
/// <see cref="AcquireAsync"/> until disposed, released by the kernel when the process dies (SIGKILL
/// included), so a lock never goes stale. On Unix .NET opens a file with <see cref="FileShare.None"/> under
/// flock(LOCK_EX|LOCK_NB) (advisory, per open file description; on NFS the client maps it to a
/// byte-range lock), which is what this uses: no P/Invoke. The lock file is never deleted: deleting
/// it would let two runs lock two different inodes.
/// </summary>
public sealed class FileLock : IDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private readonly FileStream _stream;

    private FileLock(string path, FileStream stream)
    {
        Path = path;
        _stream = stream;
    }

    public string Path { get; }

    /// <summary>
    /// Takes the lock at <paramref name="path"/> (creating the file and its directory, 0644/0755). While
    /// another process holds it, logs once that it is waiting and polls; with a <paramref name="timeout"/>
    /// it gives up after that long with a <see cref="LockTimeoutException"/>.
    /// </summary>
    /// <param name="what">For messages: what the lock protects, e.g. "destination /data/model".</param>
    public static async Task<FileLock> AcquireAsync(string path, string what, TimeSpan? timeout, ILogger logger, CancellationToken ct)
    {
        path = System.IO.Path.GetFullPath(path);
        Files.EnsureDirectory(System.IO.Path.GetDirectoryName(path)!);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool logged = false;
        while (true)
        {
            if (TryOpen(path) is { } stream)
            {
                if (logged)
                {
                    logger.LogInformation("got the lock on {What} after {Seconds:0.0} s", what, clock.Elapsed.TotalSeconds);
                }
                return new FileLock(path, stream);
            }
            if (timeout is { } limit && clock.Elapsed >= limit)
            {
                throw new LockTimeoutException($"{what} is in use by another run (lock {path} held for more than {limit.TotalSeconds:0.#} s)");
            }
            if (!logged)
            {
                logger.LogWarning("waiting for another run to finish with {What} (lock {Path})", what, path);
                logged = true;
            }
            var wait = timeout is { } t ? TimeSpan.FromTicks(Math.Max(0, Math.Min(PollInterval.Ticks, (t - clock.Elapsed).Ticks))) : PollInterval;
            await Task.Delay(wait, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Deletes a temp file if no live process holds it: its writer keeps it open with
    /// <see cref="FileShare.None"/>, so a file this can lock belongs to a dead run. An empty file is left
    /// alone (its writer may be between creating and locking it; it wastes no space).
    /// </summary>
    public static bool TryDeleteIfStale(string path)
    {
        FileStream? probe;
        try
        {
            probe = TryOpen(path, FileMode.Open);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        using (probe)
        {
            if (probe is null || probe.Length == 0)
            {
                return false;
            }
            Files.TryDelete(path);
            return !File.Exists(path);
        }
    }

    private static FileStream? TryOpen(string path, FileMode mode = FileMode.OpenOrCreate)
    {
        bool existed = File.Exists(path);
        try
        {
            var stream = new FileStream(path, mode, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
            if (!existed)
            {
                Files.SetMode(path, Files.FileMode644);
            }
            return stream;
        }
        catch (IOException e) when (IsHeld(e))
        {
            return null;
        }
    }

    /// <summary>EWOULDBLOCK from flock: .NET reports it as a sharing violation.</summary>
    private static bool IsHeld(IOException e) =>
        e is not FileNotFoundException and not DirectoryNotFoundException
        && (e.HResult is 11 or unchecked((int)0x80070020) || e.Message.Contains("used by another process", StringComparison.OrdinalIgnoreCase));

    public void Dispose() => _stream.Dispose();
}
