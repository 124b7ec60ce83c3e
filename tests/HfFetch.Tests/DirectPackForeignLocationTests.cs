using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// Issue 21 item 1 for oci-pack --model hf://: the PUBLISHED oci-pack streams the fake Hub's files to a hostile
/// registry whose upload Locations name another origin; that origin never sees an Authorization header (neither
/// the registry's password nor the Hub token).
/// </summary>
public sealed class DirectPackForeignLocationTests : IAsyncDisposable
{
    private readonly TempDir _dir = new("oci-pack-direct-foreign");
    private readonly FakeHub _hub = new();

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task A_foreign_upload_location_gets_no_credentials_when_packing_from_the_hub()
    {
        await using var registry = await HostileRegistry.StartAsync();
        const string creds = "pusher:s3cret-HOSTILE-pw";
        registry.RequireBasic = creds;
        registry.ForeignUploads = true;
        var repo = _hub.AddRepo("org/model");
        repo.Add("config.json", "{\"a\":1}"u8.ToArray());
        repo.Add("model.safetensors", TempDir.RandomBytes((5 << 20) / 2, 5), lfs: true);
        _hub.ValidTokens.Add("hf_hostile_token");

        var r = await ToolRunner.RunAsync("oci-pack", [
            "--model", $"hf://{repo.Id}@{repo.Commit}", "--endpoint", _hub.Endpoint, "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M",
            "--output", $"docker://{registry.HostPort}/hf/model:1", "--tls-verify=false", "--creds", creds, "--chunk-size", "1M",
            "--state-dir", _dir.Combine("state")],
            new Dictionary<string, string?>
            {
                ["HF_TOKEN"] = "hf_hostile_token",
                ["HUGGING_FACE_HUB_TOKEN"] = null,
                ["HF_ENDPOINT"] = null,
                ["HF_HUB_OFFLINE"] = null,
                ["HF_HOME"] = _dir.Combine("hf-home"),
                ["SOURCE_DATE_EPOCH"] = null,
                ["REGISTRY_AUTH_FILE"] = null,
            }, TimeSpan.FromMinutes(3));

        var foreign = registry.ForeignRequests.ToList();
        Assert.Contains(foreign, f => f.Method == "PATCH");
        Assert.All(foreign, f => Assert.True(f.Authorization is null, $"{f.Method} {f.Target} on the foreign origin got Authorization"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(registry.HasManifest("hf/model", "1"));
        Assert.DoesNotContain("s3cret-HOSTILE-pw", r.AllOutput);
        Assert.DoesNotContain("hf_hostile_token", r.AllOutput);
    }
}
