using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.IO;
using ModelCar.TestSupport;

namespace ModelCar.Common.Tests;

/// <summary>The destination lock (flock through FileShare.None) and the stale-temp rule built on it.</summary>
public class FileLockTests
{
    [Fact]
    public async Task A_held_lock_times_out_and_is_free_again_once_released()
    {
        using var tmp = new TempDir();
        var path = tmp.Combine("state", "lock");
        var first = await FileLock.AcquireAsync(path, "destination X", null, NullLogger.Instance, default);
        Assert.Equal(Files.FileMode644, File.GetUnixFileMode(path));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<LockTimeoutException>(() => FileLock.AcquireAsync(path, "destination X", TimeSpan.FromMilliseconds(300), NullLogger.Instance, default));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(10));
        Assert.Contains("destination X is in use by another run", ex.Message);

        var waiting = FileLock.AcquireAsync(path, "destination X", null, NullLogger.Instance, default);
        await Task.Delay(400);
        Assert.False(waiting.IsCompleted);
        first.Dispose();
        using var second = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(File.Exists(path)); // the lock file stays
    }

    [Fact]
    public void Only_unlocked_non_empty_temp_files_count_as_stale()
    {
        using var tmp = new TempDir();
        var live = tmp.WriteFile(".a.tmp", [1, 2, 3]);
        var dead = tmp.WriteFile(".b.tmp", [1, 2, 3]);
        var empty = tmp.WriteFile(".c.tmp", []);
        using (new FileStream(live, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            Assert.False(FileLock.TryDeleteIfStale(live));
            Assert.True(FileLock.TryDeleteIfStale(dead));
            Assert.False(FileLock.TryDeleteIfStale(empty));
            Assert.False(FileLock.TryDeleteIfStale(tmp.Combine("missing.tmp")));
        }
        Assert.True(File.Exists(live));
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(empty));
        Assert.True(FileLock.TryDeleteIfStale(live)); // its writer is gone
    }
}
