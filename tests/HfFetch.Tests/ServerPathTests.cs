using ModelCar.HuggingFace;
using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// Server-sent paths hf-fetch must not write or print as they are (issue 21 item 13): a file the Hub names inside our
/// own state folders (.hf-fetch, .oci-pack, where oci-pack reads its layer record), and control characters in a
/// refused path, printed escaped so the error stays one line. The PUBLISHED hf-fetch against the fake Hub.
/// </summary>
public sealed class ServerPathTests : IAsyncLifetime
{
    private readonly FakeHub _hub = new();
    private readonly TempDir _dir = new("hf-paths");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    private string Dest => _dir.Combine("dest");

    private Task<ToolResult> Fetch(string repo) =>
        ToolRunner.RunAsync("hf-fetch", [repo, "--dest", Dest, "--endpoint", _hub.Endpoint], new Dictionary<string, string?>
        {
            ["HF_TOKEN"] = null,
            ["HUGGING_FACE_HUB_TOKEN"] = null,
            ["HF_ENDPOINT"] = null,
            ["HF_HUB_OFFLINE"] = null,
            ["HF_HOME"] = _dir.Combine("hf-home"),
        }, TimeSpan.FromMinutes(2));

    private static string ErrorLine(string tool, ToolResult r)
    {
        Assert.DoesNotContain("   at ", r.StdErr);
        return Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith($"{tool}: error: ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(".oci-pack/layers.json")]
    [InlineData(".oci-pack")]
    [InlineData(".hf-fetch/snapshot.json")]
    public async Task A_server_path_inside_our_state_folders_is_never_written(string evil)
    {
        var repo = _hub.AddRepo("org/state" + _hub.Repos.Count);
        repo.Add("ok.txt", [1, 2]);
        repo.ExtraTreePaths.Add(evil);
        var fetch = await Fetch(repo.Id);
        Assert.Equal(1, fetch.ExitCode);
        var line = ErrorLine("hf-fetch", fetch);
        Assert.Contains($"refusing server path '{evil}': path inside", line);
        Assert.Contains(evil.Split('/')[0] + "/", line);
        Assert.Empty(_hub.Resolves);
        Assert.False(File.Exists(Path.Combine(Dest, evil)));
    }

    [Fact]
    public async Task A_NUL_in_a_refused_path_is_printed_escaped()
    {
        var repo = _hub.AddRepo("org/nul");
        repo.Add("ok.txt", [1, 2]);
        repo.ExtraTreePaths.Add("a\0b\nc.txt");
        var fetch = await Fetch(repo.Id);
        Assert.Equal(1, fetch.ExitCode);
        Assert.DoesNotContain('\0', fetch.StdErr);
        Assert.Contains(@"refusing server path 'a\x00b\x0ac.txt': NUL in path", ErrorLine("hf-fetch", fetch));
    }

    [Fact]
    public void Printable_escapes_control_characters_and_backslashes_only()
    {
        Assert.Equal("dir with space/ünï.txt", HubPaths.Printable("dir with space/ünï.txt"));
        Assert.Equal(@"a\x00b\x1b[31m\\c\x85", HubPaths.Printable("a\0b\u001b[31m\\c\u0085"));
    }
}
