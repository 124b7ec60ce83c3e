using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// oci-pack --dry-run --model hf://ORG/NAME (issue 21): the plan from the Hub's listing alone — sizes
/// from the tree, no file downloaded, nothing written (no layout, no layer record under HF_HOME).
/// </summary>
public sealed class DirectDryRunTests : IAsyncDisposable
{
    private readonly TempDir _dir = new("oci-pack-dry-hf");
    private readonly FakeHub _hub = new();

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Dry_run_of_hf_model_plans_from_the_listing_without_downloading_a_file()
    {
        var repo = _hub.AddRepo("org/model");
        repo.Add("config.json", "{\"a\":1}"u8.ToArray());
        repo.Add("model-00001-of-00002.safetensors", TempDir.RandomBytes(3 << 20, 3), lfs: true);
        repo.Add("model-00002-of-00002.safetensors", TempDir.RandomBytes((2 << 20) + 17, 4), lfs: true);
        var home = _dir.Combine("hf-home");
        var layout = _dir.Combine("out", "layout");
        var env = new Dictionary<string, string?>
        {
            ["HF_TOKEN"] = null, ["HUGGING_FACE_HUB_TOKEN"] = null, ["HF_ENDPOINT"] = null, ["HF_HUB_OFFLINE"] = null,
            ["HF_HOME"] = home, ["XDG_CACHE_HOME"] = null, ["SOURCE_DATE_EPOCH"] = null, ["REGISTRY_AUTH_FILE"] = null,
        };
        var r = await ToolRunner.RunAsync("oci-pack", ["--model", "hf://org/model", "--endpoint", _hub.Endpoint, "--base", "scratch", "--allow-no-shell",
            "--layer-threshold", "1M", "--dry-run", "--output", $"oci:{layout}:v1"], env, TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("model: hf://org/model (the Hub's listing): 3 files, ", r.StdOut);
        Assert.Contains("model layers: 3 ", r.StdOut);
        Assert.Contains($"/models/model-00001-of-00002.safetensors (alone): files 3.0 MiB ({3 << 20} bytes)", r.StdOut);
        Assert.Contains($"/models/model-00002-of-00002.safetensors (alone): files 2.0 MiB ({(2 << 20) + 17} bytes)", r.StdOut);
        Assert.Contains($"oci:{layout}:v1 (new layout): has 0 of 3 blobs; would write 3", r.StdOut);
        Assert.EndsWith("the real run would start\n", r.StdOut);
        // not one file request, not one body byte; nothing written
        Assert.Empty(_hub.Resolves);
        Assert.Equal(0, _hub.BytesServed.Values.Sum());
        Assert.False(Directory.Exists(_dir.Combine("out")));
        Assert.False(Directory.Exists(Path.Combine(home, "oci-pack")), "the dry run wrote a layer record");
    }
}
