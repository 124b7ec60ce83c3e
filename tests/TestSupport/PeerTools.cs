namespace ModelCar.TestSupport;

/// <summary>Runs the real peers (skopeo, umoci) that judge our output. Missing peers fail the test.</summary>
public static class PeerTools
{
    public static async Task<ToolResult> RunAsync(string program, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var path = Which(program) ?? throw new FileNotFoundException($"'{program}' is not installed (apt-get install {program}); ./test.sh installs it");
        var psi = new System.Diagnostics.ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = System.Diagnostics.Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(5));
        await p.WaitForExitAsync(cts.Token);
        return new ToolResult(p.ExitCode, await o, await e);
    }

    public static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':')
            .Select(d => Path.Combine(d, program))
            .FirstOrDefault(File.Exists);
}
