using Xunit;

namespace ModelCar.TestSupport;

/// <summary>Lock-contention tests: a lock file held the way a running tool holds it, and a run that must wait for it.</summary>
public static class LockContention
{
    /// <summary>Holds <paramref name="lockFile"/> as another run would (flock through FileShare.None) until disposed.</summary>
    public static FileStream Hold(string lockFile) => new(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);

    /// <summary>
    /// <paramref name="waiting"/>, started while <paramref name="held"/> holds the lock, is still running 1.5 s later;
    /// once the lock is released it succeeds and says on stderr that it waited.
    /// </summary>
    public static async Task AssertWaitsUntilReleasedAsync(IDisposable held, Task<ToolResult> waiting)
    {
        await Task.Delay(1500);
        Assert.False(waiting.IsCompleted, "did not wait for the lock");
        held.Dispose();
        var done = await waiting;
        Assert.True(done.ExitCode == 0, done.ToString());
        Assert.Contains("waiting", done.StdErr);
    }
}
