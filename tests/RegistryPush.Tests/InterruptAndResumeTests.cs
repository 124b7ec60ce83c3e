using System.Diagnostics;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>
/// SIGTERM in the middle of a push, then the same push again (a Tekton retry): open sessions that
/// cannot be resumed are cancelled with DELETE; recorded chunked sessions are continued from the
/// registry's offset by the next run, or started afresh when the registry killed them.
/// </summary>
public sealed class InterruptAndResumeTests(HtpasswdRegistryFixture fixture) : IClassFixture<HtpasswdRegistryFixture>
{
    /// <summary>SIGTERM (what Tekton sends first), through kill(1).</summary>
    private static async Task SigtermAsync(int pid)
    {
        using var kill = Process.Start("kill", ["-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }

    private const long Layer1 = (4 << 20) + (512 << 10);
    private const long Layer2 = 3 << 20;

    private sealed record Run(Process Process, Task<string> StdOut, Task<string> StdErr);

    private static string[] Args(TestImage image, FaultProxy proxy, string repo, string passwordFile, params string[] extra) =>
        ["--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{proxy.HostPort}/{repo}:v1", "--tls-verify=false",
            "--username", HtpasswdRegistryFixture.User, "--password-file", passwordFile, "--jobs", "1", .. extra];

    private static Run Start(string[] args)
    {
        var p = ToolRunner.Start("registry-push", args);
        return new Run(p, p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
    }

    /// <summary>Waits until the proxy holds a request, sends SIGTERM, and returns the result (exit within a few seconds).</summary>
    private static async Task<ToolResult> TerminateWhenHeldAsync(Run run, FaultProxy proxy)
    {
        var held = await Task.WhenAny(proxy.Held.Task, run.Process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60)));
        Assert.True(held == proxy.Held.Task, "the proxy never held a request\n" + (run.Process.HasExited ? await run.StdErr : "") + string.Join("\n", proxy.Log));
        await Task.Delay(300); // the tool is now blocked writing the held body
        var clock = Stopwatch.StartNew();
        await SigtermAsync(run.Process.Id);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await run.Process.WaitForExitAsync(cts.Token);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"exit took {clock.Elapsed}");
        return new ToolResult(run.Process.ExitCode, await run.StdOut, await run.StdErr);
    }

    [Fact]
    public async Task Sigterm_during_a_chunked_push_then_rerun_resumes_from_the_registry_offset()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(61, (int)Layer1, (int)Layer2, 700));
        var passwordFile = tmp.WriteFile("password", HtpasswdRegistryFixture.Password);
        await using var proxy = await FaultProxy.StartAsync(fixture.Registry.BaseUri);
        int patches = 0;
        // a buffering front proxy: the 4th PATCH (bytes 2M-3M of the first layer) never reaches the registry. Every blob
        // goes by PATCH now (the config's one streamed PATCH is the 1st; it was a PUT with a body before the copy engine)
        proxy.Decide = (_, m, _) => m == "PATCH" && Interlocked.Increment(ref patches) == 4 ? Fault.Hold : Fault.Forward;
        const string repo = "resume/sigterm";
        var args = Args(image, proxy, repo, passwordFile, "--chunk-size", "1M");
        var first = await TerminateWhenHeldAsync(Start(args), proxy);
        Assert.NotEqual(0, first.ExitCode);
        var statePath = image.LayoutPath + ".registry-push-state.json";
        Assert.True(File.Exists(statePath), first.ToString());
        var state = File.ReadAllText(statePath);
        Assert.Contains("\"offset\": 2097152", state);
        Assert.DoesNotContain(proxy.Log, l => l.StartsWith("DELETE", StringComparison.Ordinal)); // a recorded session is kept for the next run
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(statePath));

        proxy.Decide = (_, _, _) => Fault.Forward;
        proxy.ResetCounters();
        var second = await ToolRunner.RunAsync("registry-push", args);
        await fixture.AssertLandedAsync(repo, image, second, proxy, tmp.Path);
        Assert.Contains("resuming the upload of an earlier run at byte 2097152 of 4718592", second.StdErr);
        // only what the registry did not have was sent again: the rest of layer 1, layer 2 and the 700-byte layer
        // (in a PATCH now, in the PUT before the copy engine)
        Assert.Equal(Layer1 - (2 << 20) + Layer2 + 700, proxy.PatchBytes);
        Assert.False(File.Exists(statePath), "the state file is removed once every recorded blob is complete");
    }

    [Fact]
    public async Task A_session_the_registry_killed_mid_patch_is_started_afresh_by_the_next_run()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(62, (int)Layer1, 600));
        var passwordFile = tmp.WriteFile("password", HtpasswdRegistryFixture.Password);
        var stateDir = tmp.Combine("state");
        await using var proxy = await FaultProxy.StartAsync(fixture.Registry.BaseUri);
        int patches = 0;
        // CNCF distribution 2.8 kills a session once part of a PATCH body reached it and the request was cut
        // the 4th PATCH is the first layer's 3rd chunk (the config's one PATCH is the 1st)
        proxy.Decide = (_, m, _) => m == "PATCH" && Interlocked.Increment(ref patches) == 4 ? Fault.HoldAfterHalfForward : Fault.Forward;
        const string repo = "resume/dead";
        var args = Args(image, proxy, repo, passwordFile, "--chunk-size", "1M", "--state-dir", stateDir);
        var first = await TerminateWhenHeldAsync(Start(args), proxy);
        Assert.NotEqual(0, first.ExitCode);
        Assert.True(File.Exists(Path.Combine(stateDir, "registry-push-state.json")), first.ToString());
        Assert.False(File.Exists(image.LayoutPath + ".registry-push-state.json")); // --state-dir replaces the default place

        proxy.Decide = (_, _, _) => Fault.Forward;
        proxy.ResetCounters();
        var second = await ToolRunner.RunAsync("registry-push", args);
        await fixture.AssertLandedAsync(repo, image, second, proxy, tmp.Path);
        Assert.Contains("the upload session of an earlier run cannot be resumed", second.StdErr);
        Assert.Equal(Layer1 + 600, proxy.PatchBytes); // the fallback: the whole blob once, in a new session; and the 600-byte layer (one PATCH)
        Assert.False(File.Exists(Path.Combine(stateDir, "registry-push-state.json")));
    }

    [Fact]
    public async Task Sigterm_during_a_monolithic_upload_cancels_the_session_with_delete()
    {
        // the body goes in one streamed PATCH (it went in the PUT before the copy engine): hold that request
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(63, 3 << 20, 500));
        var passwordFile = tmp.WriteFile("password", HtpasswdRegistryFixture.Password);
        await using var proxy = await FaultProxy.StartAsync(fixture.Registry.BaseUri);
        proxy.Decide = (_, m, p) => m == "PATCH" && p.Contains("/blobs/uploads/", StringComparison.Ordinal) ? Fault.Hold : Fault.Forward;
        var r = await TerminateWhenHeldAsync(Start(Args(image, proxy, "resume/mono", passwordFile)), proxy);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("upload session cancelled (DELETE: 204)", r.StdErr);
        var delete = Assert.Single(proxy.Log, l => l.StartsWith("DELETE", StringComparison.Ordinal));
        Assert.Matches(@"^DELETE /v2/resume/mono/blobs/uploads/[0-9a-f-]+ -> 204$", delete);
        Assert.False(File.Exists(image.LayoutPath + ".registry-push-state.json")); // monolithic sessions are never recorded
    }

    [Fact]
    public async Task An_unwritable_state_dir_is_one_clear_error()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(64, 1000));
        var file = tmp.WriteFile("not-a-dir", "x");
        var r = await ToolRunner.RunAsync("registry-push", "--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{fixture.Registry.HostPort}/x/y:v1",
            "--tls-verify=false", "--state-dir", Path.Combine(file, "sub"));
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"registry-push: error: --state-dir '{Path.Combine(file, "sub")}': cannot write the upload state there", r.StdErr.Trim());
    }
}
