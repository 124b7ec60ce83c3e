using System.Diagnostics;
using System.Text;

namespace ModelCar.TestSupport;

public sealed record ToolResult(int ExitCode, string StdOut, string StdErr)
{
    public string AllOutput => StdOut + "\n" + StdErr;

    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}

/// <summary>
/// Runs the published Native-AOT binaries (out/bin, from ./build.sh) as separate processes: what
/// the tests check is what ships. A missing binary fails the test; it never skips.
/// </summary>
public static class ToolRunner
{
    public static string PathOf(string tool)
    {
        var path = Path.Combine(RepoPaths.BinDir, tool);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"published binary '{path}' is missing: run ./build.sh first (./test.sh does)");
        }
        return path;
    }

    public static Task<ToolResult> RunAsync(string tool, IEnumerable<string> args, IDictionary<string, string?>? env = null,
        TimeSpan? timeout = null, string? workingDirectory = null, CancellationToken ct = default)
    {
        var psi = new ProcessStartInfo(PathOf(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        ApplyEnvironment(psi, env);
        return RunProcessAsync(psi, $"{tool} {string.Join(' ', args)}", timeout ?? TimeSpan.FromMinutes(5), ct);
    }

    /// <summary>The tests' short retry delay, then <paramref name="env"/> on top: a null value removes the variable.</summary>
    public static void ApplyEnvironment(ProcessStartInfo psi, IDictionary<string, string?>? env)
    {
        psi.Environment["MODELCAR_RETRY_BASE_DELAY_MS"] = "50";
        if (env is not null)
        {
            foreach (var (k, v) in env)
            {
                if (v is null)
                {
                    psi.Environment.Remove(k);
                }
                else
                {
                    psi.Environment[k] = v;
                }
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="psi"/> (stdout and stderr redirected; stdin, if redirected, closed at once) to its end
    /// and captures both streams. After <paramref name="timeout"/> the process tree is killed and a
    /// <see cref="TimeoutException"/> names <paramref name="what"/> with the stderr so far.
    /// </summary>
    public static async Task<ToolResult> RunProcessAsync(ProcessStartInfo psi, string what, TimeSpan timeout, CancellationToken ct = default)
    {
        using var process = Process.Start(psi)!;
        if (psi.RedirectStandardInput)
        {
            process.StandardInput.Close();
        }
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{what} did not finish in time\n{await stderr}");
        }
        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }

    public static Task<ToolResult> RunAsync(string tool, params string[] args) => RunAsync(tool, (IEnumerable<string>)args);

    /// <summary>Starts a tool and returns the process (for kill-in-the-middle tests).</summary>
    public static Process Start(string tool, IEnumerable<string> args, IDictionary<string, string?>? env = null)
    {
        var psi = new ProcessStartInfo(PathOf(tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["MODELCAR_RETRY_BASE_DELAY_MS"] = "50";
        foreach (var (k, v) in env ?? new Dictionary<string, string?>())
        {
            psi.Environment[k] = v;
        }
        return Process.Start(psi)!;
    }

    /// <summary>
    /// SIGKILLs <paramref name="process"/> once <paramref name="bytes"/> reaches <paramref name="threshold"/>, watching from a
    /// dedicated thread (on a loaded machine the thread pool wakes a Task.Delay loop too late).
    /// </summary>
    public static Task<(bool Killed, long At, long Ms)> KillWhenAsync(Process process, Func<long> bytes, long threshold)
    {
        var done = new TaskCompletionSource<(bool, long, long)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (bytes() < threshold && !process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2))
            {
                Thread.Sleep(1);
            }
            bool alive = !process.HasExited;
            if (alive)
            {
                process.Kill(); // SIGKILL
            }
            done.SetResult((alive, bytes(), clock.ElapsedMilliseconds));
        }) { IsBackground = true, Priority = ThreadPriority.Highest };
        thread.Start();
        return done.Task;
    }
}
