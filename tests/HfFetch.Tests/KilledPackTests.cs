using System.Net;
using System.Text.Json;
using ModelCar.TestSupport;
using Xunit.Abstractions;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// Issue 21 item 4: the PUBLISHED oci-pack, SIGKILLed at a random point (seeded; the seed is logged and
/// <c>MODELCAR_KILL_SEED</c> replays it) while it streams a model — from the fake Hub (<c>hf://</c>) or from a
/// directory — through a counting proxy into a CNCF registry, then run again: the re-run downloads and
/// uploads only the layers the registry did not hold after the kill (plus one 1 MiB buffer, and the
/// config and manifest), because each layer is recorded as soon as it is committed.
/// </summary>
public sealed class KilledPackTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long Slack = 1 << 20; // one buffer of the one pass (BlobFanOut.BufferSize)

    private readonly TempDir _dir = new("oci-pack-killed");
    private readonly FakeHub _hub = new();
    private RegistryContainer _registry = null!;

    public async Task InitializeAsync() => _registry = await new RegistryContainer().StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    private Dictionary<string, string?> Env(string hfHome) => new()
    {
        ["HF_TOKEN"] = null,
        ["HUGGING_FACE_HUB_TOKEN"] = null,
        ["HF_ENDPOINT"] = null,
        ["HF_HUB_OFFLINE"] = null,
        ["HF_HOME"] = hfHome,
        ["XDG_CACHE_HOME"] = null,
        ["SOURCE_DATE_EPOCH"] = null,
        ["REGISTRY_AUTH_FILE"] = null,
    };

    private static readonly (string Path, int Size)[] Files =
        [("config.json", 300), ("model-00001-of-00004.safetensors", 5 << 20), ("model-00002-of-00004.safetensors", (5 << 20) + 11),
         ("model-00003-of-00004.safetensors", (5 << 20) + 22), ("model-00004-of-00004.safetensors", (5 << 20) + 33)];

    private sealed record Layer(string Digest, long Size, string Title);

    private async Task<bool> HeldAsync(string repo, string digest)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Head, new Uri(_registry.BaseUri, $"v2/{repo}/blobs/{digest}"));
        using var response = await http.SendAsync(request);
        return response.StatusCode == HttpStatusCode.OK;
    }

    [Theory]
    [InlineData("hub")]
    [InlineData("dir")]
    public async Task A_rerun_after_a_sigkill_sends_only_the_layers_the_registry_lacks(string source)
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("MODELCAR_KILL_SEED"), out var s) ? s : Environment.TickCount;
        output.WriteLine($"seed {seed} (MODELCAR_KILL_SEED={seed} replays it)");
        var repo = _hub.AddRepo("org/killed");
        var model = _dir.Combine("model");
        for (int i = 0; i < Files.Length; i++)
        {
            var content = TempDir.RandomBytes(Files[i].Size, 40 + i);
            repo.Add(Files[i].Path, content, lfs: Files[i].Size > 1000);
            _dir.WriteFile("model/" + Files[i].Path, content);
        }
        var modelArg = source == "hub" ? $"hf://{repo.Id}@{repo.Commit}" : model;
        string[] Args(string dest, params string[] more) => [
            "--model", modelArg, .. (source == "hub" ? new[] { "--endpoint", _hub.Endpoint } : []), "--base", "scratch", "--allow-no-shell", "--layer-threshold", "1M",
            "--jobs", "1", "--output", dest, "--tls-verify=false", .. more];

        // the reference: the same model packed into a layout (its own record), for the layers' digests, sizes and titles
        var reference = _dir.Combine("reference");
        var refRun = await ToolRunner.RunAsync("oci-pack", Args($"oci:{reference}:v1", "--state-dir", _dir.Combine("reference-state")), Env(_dir.Combine("hf-ref")), TimeSpan.FromMinutes(3));
        Assert.True(refRun.ExitCode == 0, refRun.ToString());
        var layers = ReadLayers(reference);
        Assert.Equal(5, layers.Count);
        long total = layers.Sum(l => l.Size);

        await using var proxy = await FaultProxy.StartAsync(_registry.BaseUri);
        proxy.ThrottleBytesPerSecond = 6 << 20; // about 3.5 s for the model: the kill lands mid-run
        var hfHome = _dir.Combine("hf-home");
        string dest = $"docker://{proxy.HostPort}/killed/{source}:v1";
        // somewhere between the end of the first big layer and the middle of the last one (biggest first, one at a time)
        var random = new Random(seed);
        long killAt = (long)(total * (0.3 + 0.55 * random.NextDouble()));
        output.WriteLine($"kill after {killAt} of {total} uploaded bytes");
        var process = ToolRunner.Start("oci-pack", Args(dest), Env(hfHome));
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var (killed, at, ms) = await ToolRunner.KillWhenAsync(process, () => proxy.BodyBytes, killAt);
        output.WriteLine($"SIGKILL after {ms} ms at {at} bytes through the proxy");
        Assert.True(killed, $"oci-pack ended before the kill point ({at} bytes)\n{await stderr}");
        await process.WaitForExitAsync();
        await stdout;
        var firstLog = await stderr;
        // what the killed process had already written into its sockets still reaches the proxy: let it drain
        // (unthrottled) before the re-run's bytes are counted
        proxy.ThrottleBytesPerSecond = 0;
        for (long last = -1; last != proxy.BodyBytes;)
        {
            last = proxy.BodyBytes;
            await Task.Delay(500);
        }

        var held = new List<Layer>();
        foreach (var l in layers)
        {
            if (await HeldAsync($"killed/{source}", l.Digest))
            {
                held.Add(l);
            }
        }
        var unfinished = layers.Except(held).ToList();
        long unfinishedBytes = unfinished.Sum(l => l.Size);
        output.WriteLine($"after the kill the registry holds {held.Count} of {layers.Count} layers; unfinished {unfinishedBytes} bytes");
        Assert.True(held.Count >= 1, $"no layer was committed before the kill (seed {seed})\n{firstLog}");
        Assert.True(unfinished.Count >= 1, $"every layer was committed before the kill (seed {seed})\n{firstLog}");

        proxy.ResetCounters();
        _hub.BytesServed.Clear();
        var second = await ToolRunner.RunAsync("oci-pack", Args(dest), Env(hfHome), TimeSpan.FromMinutes(3));
        Assert.True(second.ExitCode == 0, second.ToString());
        long uploaded = proxy.BodyBytes;
        long downloaded = _hub.BytesServed.Values.Sum();
        output.WriteLine($"re-run: uploaded {uploaded}, downloaded {downloaded} (hub) bytes");

        // every layer is in the registry now, and the image is the reference's (same layer digests)
        foreach (var l in layers)
        {
            Assert.True(await HeldAsync($"killed/{source}", l.Digest), $"layer {l.Title} missing after the re-run");
        }
        var streamedTitles = layers.Where(l => second.StdErr.Contains($"layer {l.Title}: ", StringComparison.Ordinal)
            && System.Text.RegularExpressions.Regex.IsMatch(second.StdErr, $@"layer {System.Text.RegularExpressions.Regex.Escape(l.Title)}: [0-9.]+ [KMG]?i?B to 1 output\(s\)")).ToList();
        Assert.True(streamedTitles.All(unfinished.Contains), $"seed {seed}: the re-run read layers the registry already held: {string.Join(", ", streamedTitles.Except(unfinished).Select(l => l.Title))}\n{second.StdErr}");
        // what went up again: the unfinished layers, the config and the manifest (a few KiB), at most one buffer more
        Assert.True(uploaded <= unfinishedBytes + Slack + 16_384, $"seed {seed}: uploaded {uploaded} bytes again; the unfinished layers are {unfinishedBytes}\n{second.StdErr}");
        if (source == "hub")
        {
            Assert.True(downloaded <= unfinishedBytes + Slack, $"seed {seed}: downloaded {downloaded} bytes again; the unfinished layers are {unfinishedBytes}\n{second.StdErr}");
        }
        Assert.Contains($"({held.Count} known from the layer record)", second.StdErr);
    }

    private static List<Layer> ReadLayers(string layout)
    {
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(layout, "index.json")));
        var manifestDigest = index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", manifestDigest["sha256:".Length..])));
        return manifest.RootElement.GetProperty("layers").EnumerateArray().Select(l => new Layer(
            l.GetProperty("digest").GetString()!, l.GetProperty("size").GetInt64(),
            l.GetProperty("annotations").GetProperty("org.opencontainers.image.title").GetString()!)).ToList();
    }
}
