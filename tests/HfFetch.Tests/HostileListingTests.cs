using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.HuggingFace;
using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// Hub listings that would give a broken download or image (issue 21 items 7 and 13): the PUBLISHED hf-fetch and
/// oci-pack (<c>hf://</c>, to an OCI layout: no registry needed) against a fake Hub that lies. Both list through the
/// HuggingFace library, so both refuse the same way: exit 1, one line naming the path or the page count.
/// </summary>
public sealed class HostileListingTests : IAsyncLifetime
{
    private readonly FakeHub _hub = new();
    private readonly TempDir _dir = new("hf-hostile");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    private string Dest => _dir.Combine("dest");

    private Dictionary<string, string?> Env() => new()
    {
        ["HF_TOKEN"] = null,
        ["HUGGING_FACE_HUB_TOKEN"] = null,
        ["HF_ENDPOINT"] = null,
        ["HF_HUB_OFFLINE"] = null,
        ["HF_HOME"] = _dir.Combine("hf-home"),
        ["XDG_CACHE_HOME"] = null,
        ["SOURCE_DATE_EPOCH"] = null,
        ["REGISTRY_AUTH_FILE"] = null,
    };

    private Task<ToolResult> Fetch(string repo, params string[] more) =>
        ToolRunner.RunAsync("hf-fetch", [repo, "--dest", Dest, "--endpoint", _hub.Endpoint, .. more], Env(), TimeSpan.FromMinutes(2));

    private Task<ToolResult> Pack(string repo, params string[] more) =>
        ToolRunner.RunAsync("oci-pack", [
            "--model", $"hf://{repo}", "--endpoint", _hub.Endpoint, "--base", "scratch", "--allow-no-shell",
            "--output", $"oci:{_dir.Combine("layout")}:v1", .. more], Env(), TimeSpan.FromMinutes(2));

    /// <summary>The one error line of <paramref name="tool"/> (info lines may precede it on stderr); no stack trace.</summary>
    private static string ErrorLine(string tool, ToolResult r)
    {
        Assert.DoesNotContain("   at ", r.StdErr);
        return Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith($"{tool}: error: ", StringComparison.Ordinal));
    }

    private FakeRepo Repo(string id)
    {
        var repo = _hub.AddRepo(id);
        repo.Add("config.json", "{\"a\":1}"u8.ToArray());
        repo.Add("models/x/weights.bin", TempDir.RandomBytes(4000, 1), lfs: true);
        return repo;
    }

    [Fact]
    public async Task A_path_listed_as_file_and_directory_is_refused_by_hf_fetch_and_oci_pack()
    {
        var repo = Repo("org/both");
        repo.ExtraTreePaths.Add("models/x"); // a file "models/x" beside the directory "models/x/"

        var fetch = await Fetch(repo.Id);
        Assert.Equal(1, fetch.ExitCode);
        Assert.Contains("'models/x' is both a file and a directory", ErrorLine("hf-fetch", fetch));
        Assert.Empty(_hub.Resolves);
        Assert.False(File.Exists(Path.Combine(Dest, "models", "x", "weights.bin")));

        var pack = await Pack(repo.Id);
        Assert.Equal(1, pack.ExitCode);
        Assert.Contains("'models/x' is both a file and a directory", ErrorLine("oci-pack", pack));
        Assert.False(File.Exists(_dir.Combine("layout", "index.json")));
    }

    [Fact]
    public async Task A_negative_size_is_refused_naming_the_path_and_the_size()
    {
        var repo = Repo("org/negative");
        repo.Files.Single(f => f.Lfs).ClaimedSize = -5;

        var fetch = await Fetch(repo.Id);
        Assert.Equal(1, fetch.ExitCode);
        Assert.Contains("'models/x/weights.bin' has a negative size (-5)", ErrorLine("hf-fetch", fetch));
        Assert.Empty(_hub.Resolves);

        var pack = await Pack(repo.Id);
        Assert.Equal(1, pack.ExitCode);
        Assert.Contains("'models/x/weights.bin' has a negative size (-5)", ErrorLine("oci-pack", pack));
        Assert.False(File.Exists(_dir.Combine("layout", "index.json")));
    }

    [Fact]
    public async Task A_tree_whose_Link_never_ends_stops_at_the_page_bound_with_one_line()
    {
        var repo = Repo("org/endless");
        _hub.EndlessTree = true;
        var clock = Stopwatch.StartNew();
        var fetch = await Fetch(repo.Id);
        Assert.Equal(1, fetch.ExitCode);
        Assert.Contains($"tree listing of org/endless does not end: {HubClient.DefaultMaxTreePages} pages read", ErrorLine("hf-fetch", fetch));
        Assert.Equal(HubClient.DefaultMaxTreePages, _hub.TreePagesServed);
        Assert.Empty(_hub.Resolves);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_tree_listing_larger_than_the_byte_bound_fails_while_it_is_read()
    {
        var repo = _hub.AddRepo("org/many");
        for (int i = 0; i < 200; i++)
        {
            repo.Add($"shard-{i:D4}.txt", [(byte)i]);
        }
        _hub.TreePageSize = 50;
        var settings = new HttpSettings { TlsVerify = true, MaxRetries = 0, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };
        using var http = HttpClientFactory.Create(settings);
        var client = new HubClient(http, _hub.Endpoint, null, settings, NullLogger.Instance) { MaxTreeBytes = 10_000 };
        var e = await Assert.ThrowsAsync<HubException>(() => client.ListTreeAsync(RepoType.Model, repo.Id, repo.Commit, CancellationToken.None));
        Assert.Contains("tree listing of org/many is too large", e.Message);
        Assert.True(_hub.TreePagesServed < 4, $"{_hub.TreePagesServed} pages read");

        // the same listing within the bound is read whole
        var all = await new HubClient(http, _hub.Endpoint, null, settings, NullLogger.Instance).ListTreeAsync(RepoType.Model, repo.Id, repo.Commit, CancellationToken.None);
        Assert.Equal(200, all.Count(t => t.IsFile));
    }

    [Fact]
    public async Task A_page_linking_back_to_a_page_already_read_is_refused()
    {
        var repo = Repo("org/loop");
        _hub.EndlessTree = true;
        // the fake's cursor grows by the page size: with 0, page 2 (cursor=0) links to itself
        _hub.TreePageSize = 0;
        var fetch = await Fetch(repo.Id);
        Assert.Equal(1, fetch.ExitCode);
        Assert.Contains("does not end: page 3 links back to a page already read", ErrorLine("hf-fetch", fetch));
        Assert.Equal(2, _hub.TreePagesServed);
    }

    [Fact]
    public async Task Identical_repeats_in_a_listing_are_kept_once_and_different_ones_refused()
    {
        var a = new TreeEntry { Type = "file", Path = "a.txt", Oid = new string('1', 40), Size = 3 };
        var kept = TreeListing.Validate("org/r", [a, a with { }]);
        Assert.Single(kept);
        var e = Assert.Throws<HubException>(() => TreeListing.Validate("org/r", [a, a with { Size = 4 }]));
        Assert.Equal("tree listing of org/r: 'a.txt' is listed twice with different content", e.Message);
    }
}
