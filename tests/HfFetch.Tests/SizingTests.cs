using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.HuggingFace;
using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>Issue 11: duplicate weight copies are named with the exclude that avoids them; free space is checked first.</summary>
public sealed class SizingTests : IAsyncLifetime
{
    private readonly FakeHub _hub = new();
    private readonly TempDir _dir = new("hf-fetch-size");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    private Dictionary<string, string?> Env => new()
    {
        ["HF_TOKEN"] = null,
        ["HUGGING_FACE_HUB_TOKEN"] = null,
        ["HF_ENDPOINT"] = null,
        ["HF_HUB_OFFLINE"] = null,
        ["HF_HOME"] = _dir.Combine("hf-home"),
    };

    [Fact]
    public void Duplicates_need_the_hf_weights_and_a_consolidated_or_original_copy()
    {
        string[] mistral = ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "consolidated.safetensors", "params.json"];
        var found = DuplicateWeights.Find(mistral);
        Assert.Equal(["consolidated*.safetensors"], found.Select(f => f.ExcludePattern));
        Assert.Equal(["consolidated.safetensors"], found[0].Files);

        string[] llama = ["model-00001-of-00004.safetensors", "model.safetensors.index.json", "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model"];
        Assert.Equal(["original/**"], DuplicateWeights.Find(llama).Select(f => f.ExcludePattern));
        Assert.Equal(["original/consolidated.00.pth"], DuplicateWeights.Find(llama)[0].Files);

        Assert.Empty(DuplicateWeights.Find(["consolidated.safetensors", "params.json", "tekken.json"])); // only the Mistral format: no duplicate
        Assert.Empty(DuplicateWeights.Find(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "original/params.json"]));
        Assert.Single(DuplicateWeights.Find(["model.safetensors", "consolidated.safetensors"]));
        Assert.Single(DuplicateWeights.Find(["model.safetensors.index.json", "consolidated-00001-of-00002.safetensors"]));
    }

    [Fact]
    public async Task Fetching_both_forms_warns_with_the_exclude_patterns_and_excluding_them_is_quiet()
    {
        var repo = _hub.AddRepo("mistralai/tiny");
        repo.Add("config.json", "{}"u8.ToArray());
        repo.Add("model-00001-of-00001.safetensors", TempDir.RandomBytes(50_000, 1), lfs: true);
        repo.Add("model.safetensors.index.json", "{}"u8.ToArray());
        repo.Add("consolidated.safetensors", TempDir.RandomBytes(50_000, 2), lfs: true);
        repo.Add("original/consolidated.00.pth", TempDir.RandomBytes(10_000, 3), lfs: true);

        // as an arbitrary UID without HOME (restricted-v2): writes only to --dest
        using var sandbox = new ArbitraryUid();
        ArbitraryUid.AllowWrite(_dir.Combine("a"));
        var both = await sandbox.RunAsync("hf-fetch", ["mistralai/tiny", "--dest", _dir.Combine("a"), "--endpoint", _hub.Endpoint], Env);
        Assert.True(both.ExitCode == 0, both.ToString());
        sandbox.AssertNothingWritten();
        Assert.Contains("exclude 'consolidated*.safetensors' to avoid it", both.StdErr);
        Assert.Contains("exclude 'original/**' to avoid it", both.StdErr);
        Assert.Contains("consolidated.safetensors", both.StdErr);

        var one = await ToolRunner.RunAsync("hf-fetch", ["mistralai/tiny", "--dest", _dir.Combine("b"), "--endpoint", _hub.Endpoint,
            "--exclude", "consolidated*.safetensors", "--exclude", "original/**"], Env);
        Assert.True(one.ExitCode == 0, one.ToString());
        Assert.DoesNotContain("to avoid it", one.StdErr);
        Assert.False(File.Exists(_dir.Combine("b", "consolidated.safetensors")));
        Assert.False(Directory.Exists(_dir.Combine("b", "original")));
    }

    [Fact]
    public async Task More_than_the_volume_holds_fails_before_any_download_with_both_numbers()
    {
        var repo = _hub.AddRepo("org/huge");
        repo.Add("config.json", "{}"u8.ToArray());
        repo.Add("model.safetensors", TempDir.RandomBytes(1000, 4), lfs: true).ClaimedSize = 1L << 52; // 4 PiB: no disk here has that
        var r = await ToolRunner.RunAsync("hf-fetch", ["org/huge", "--dest", _dir.Combine("huge"), "--endpoint", _hub.Endpoint], Env);
        Assert.Equal(1, r.ExitCode);
        var line = r.StdErr.Split('\n').Single(l => l.StartsWith("hf-fetch: error:", StringComparison.Ordinal));
        Assert.Matches(@"not enough free space under .*huge: 4096\.0 TiB \(4503599627370498 bytes\) still to download, .* \(\d+ bytes\) available", line);
        Assert.Empty(_hub.Resolves); // nothing was downloaded
    }

    [Fact]
    public async Task Bytes_already_here_count_toward_the_space_check()
    {
        var repo = _hub.AddRepo("org/two");
        var a = repo.Add("a.safetensors", TempDir.RandomBytes(400_000, 5), lfs: true);
        repo.Add("b.safetensors", TempDir.RandomBytes(400_000, 6), lfs: true);
        var dest = _dir.Combine("two");
        var settings = new HttpSettings { TlsVerify = true, MaxRetries = 1, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };
        using var http = HttpClientFactory.Create(settings);
        var client = new HubClient(http, _hub.Endpoint, null, settings, NullLogger.Instance);
        var request = new FetchRequest { RepoId = "org/two", Dest = dest };
        long? seenAvailableFor = null;
        SnapshotFetcher Fetcher(long available) => new(NullLogger.Instance) { AvailableSpace = d => { seenAvailableFor = available; return available; } };

        var e = await Assert.ThrowsAsync<HubException>(() => Fetcher(600_000).FetchAsync(client, request, CancellationToken.None));
        Assert.Contains("781.3 KiB (800000 bytes) still to download, 585.9 KiB (600000 bytes) available", e.Message);
        Assert.Empty(_hub.Resolves);

        // a.safetensors is already in place (e.g. copied, or downloaded before the state was lost): only b is needed
        Directory.CreateDirectory(dest);
        File.WriteAllBytes(Path.Combine(dest, "a.safetensors"), a.Content);
        var summary = await Fetcher(600_000).FetchAsync(client, request, CancellationToken.None);
        Assert.Equal(2, summary.Files);
        Assert.Equal(600_000, seenAvailableFor);

        // everything verified: nothing to write, so even a full disk passes
        seenAvailableFor = null;
        await Fetcher(0).FetchAsync(client, request, CancellationToken.None);
        Assert.Null(seenAvailableFor); // not even asked
        Assert.Equal(0, DiskSpace.StillNeeded(new LocalState(dest), []));
    }

    [Fact]
    public void Statvfs_answers_for_a_plain_directory()
    {
        Assert.InRange(DiskSpace.Available(_dir.Path), 1, long.MaxValue);
        DiskSpace.Check(_dir.Path, 10, 10);
        Assert.Throws<HubException>(() => DiskSpace.Check(_dir.Path, 11, 10));
    }
}
