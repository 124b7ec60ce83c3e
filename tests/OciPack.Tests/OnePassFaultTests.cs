using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// oci-pack --output docker://… (issue 12) with the PUBLISHED binary through the fault proxy in front of
/// a real CNCF distribution registry with htpasswd auth: connections cut mid-layer (before the registry,
/// and inside it, where distribution 2.8 kills the session), 503/429 bursts and one 401 in the middle of
/// the push. The run succeeds with the digest of the layout output for the same model, skopeo pulls the
/// image back equal to that layout, and the layer bytes sent more than once stay bounded.
/// </summary>
public sealed class OnePassFaultTests : IAsyncLifetime, IDisposable
{
    private const string User = "pusher";
    private readonly string _password = "Fault-" + Guid.NewGuid().ToString("N")[..12];
    private readonly TempDir _dir = new("oci-pack-onepass-faults");
    private RegistryContainer _registry = null!;

    public async Task InitializeAsync()
    {
        var htpasswd = await PeerTools.RunAsync("htpasswd", ["-Bbn", User, _password]);
        Assert.Equal(0, htpasswd.ExitCode);
        _registry = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = htpasswd.StdOut }).StartAsync();
    }

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    public void Dispose() => _dir.Dispose();

    private (string Model, string Base) Inputs()
    {
        var baseDir = _dir.Combine("base");
        Directory.CreateDirectory(baseDir);
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer(), gzip: true);
        _dir.WriteFile("model/config.json", """{"architectures":["X"]}""");
        _dir.WriteFile("model/model-00001-of-00002.safetensors", TempDir.RandomBytes(6 << 20, 31));
        _dir.WriteFile("model/model-00002-of-00002.safetensors", TempDir.RandomBytes(3 << 20, 32));
        _dir.WriteFile("model/tokenizer.json", """{"v":1}""");
        return (_dir.Combine("model"), baseDir);
    }

    private static Task<ToolResult> Pack(params string[] args) =>
        ToolRunner.RunAsync("oci-pack", args, new Dictionary<string, string?>
        {
            ["SOURCE_DATE_EPOCH"] = null,
            ["REGISTRY_AUTH_FILE"] = null,
            ["MODELCAR_RETRY_BASE_DELAY_MS"] = "20",
        });

    /// <summary>Blobs (digest → bytes) and the manifest digests of a layout's index.</summary>
    private static (Dictionary<string, byte[]> Blobs, string[] Manifests) ReadLayout(string dir)
    {
        var blobs = Directory.EnumerateFiles(Path.Combine(dir, "blobs", "sha256")).Where(f => !Path.GetFileName(f).StartsWith('.'))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "index.json")));
        return (blobs, index.RootElement.GetProperty("manifests").EnumerateArray().Select(m => m.GetProperty("digest").GetString()!).ToArray());
    }

    /// <summary>Sizes of the reference image's layers that are not the base's (the ones oci-pack streams with PATCH).</summary>
    private static long[] ModelLayerSizes(string reference, string baseDir)
    {
        var baseBlobs = ReadLayout(baseDir).Blobs.Keys.ToHashSet();
        var (blobs, manifests) = ReadLayout(reference);
        using var manifest = JsonDocument.Parse(blobs[manifests.Single()["sha256:".Length..]]);
        return manifest.RootElement.GetProperty("layers").EnumerateArray()
            .Where(l => !baseBlobs.Contains(l.GetProperty("digest").GetString()!["sha256:".Length..]))
            .Select(l => l.GetProperty("size").GetInt64()).ToArray();
    }

    /// <summary>Bytes of the reference image's blobs that the commit uploads (the config and the base's layers: not streamed by the one pass).</summary>
    private static long CommitBlobBytes(string reference, string baseDir)
    {
        var (blobs, manifests) = ReadLayout(reference);
        using var manifest = JsonDocument.Parse(blobs[manifests.Single()["sha256:".Length..]]);
        var model = ModelLayerSizes(reference, baseDir).Sum();
        var root = manifest.RootElement;
        return root.GetProperty("config").GetProperty("size").GetInt64() + root.GetProperty("layers").EnumerateArray().Sum(l => l.GetProperty("size").GetInt64()) - model;
    }

    private async Task RunAsync(string repo, Func<int, string, string, Fault> decide, string[] extra, Action<ToolResult, FaultProxy, long[]> check)
    {
        var (model, baseDir) = Inputs();
        var reference = _dir.Combine("reference");
        var r0 = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M", "--output", $"oci:{reference}:v1");
        Assert.True(r0.ExitCode == 0, r0.ToString());
        var digest = r0.StdOut.Trim();
        Directory.Delete(Path.Combine(model, ".oci-pack"), recursive: true); // the faulty run reads and streams the model again

        await using var proxy = await FaultProxy.StartAsync(_registry.BaseUri);
        proxy.Decide = decide;
        var passwordFile = _dir.WriteFile("password", _password);
        var r = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M",
            "--output", $"docker://{proxy.HostPort}/{repo}:v1", "--tls-verify=false", "--username", User, "--password-file", passwordFile,
            "--retries", "6", "--jobs", "1", .. extra]);
        Assert.True(r.ExitCode == 0, r + "\n--- proxy ---\n" + string.Join("\n", proxy.Log));
        Assert.Equal($"{proxy.HostPort}/{repo}@{digest}", r.StdOut.Trim()); // the layout's digest
        Assert.DoesNotContain(_password, r.AllOutput);

        // skopeo pulls the image straight from the registry back to a layout equal to the reference
        var back = _dir.Combine("back");
        var copy = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds", $"{User}:{_password}", $"docker://{_registry.HostPort}/{repo}:v1", $"oci:{back}:v1"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());
        var expected = ReadLayout(reference);
        var actual = ReadLayout(back);
        Assert.Equal(expected.Manifests, actual.Manifests);
        Assert.Equal(expected.Blobs.Keys.Order(), actual.Blobs.Keys.Order());
        foreach (var (k, v) in expected.Blobs)
        {
            Assert.True(v.AsSpan().SequenceEqual(actual.Blobs[k]), $"blob {k} differs");
        }
        check(r, proxy, ModelLayerSizes(reference, baseDir));
    }

    private static bool IsBlobHead(string m, string p) => m == "HEAD" && p.Contains("/blobs/sha256:", StringComparison.Ordinal);

    [Fact]
    public async Task Streamed_layers_survive_cuts_inside_and_before_the_registry_503_429_bursts_and_a_401()
    {
        int patches = 0, heads = 0, posts = 0;
        await RunAsync("faults/streamed", (_, m, p) =>
        {
            if (m == "PATCH")
            {
                return Interlocked.Increment(ref patches) switch
                {
                    1 => Fault.CutMidForward,    // distribution keeps half and kills the session: that layer starts again
                    3 => Fault.CutBeforeForward, // a buffering front proxy: the session is intact, resume from its Range
                    5 => Fault.Unauthorized,     // the token expired in the middle of the push
                    _ => Fault.Forward,
                };
            }
            if (IsBlobHead(m, p))
            {
                return Interlocked.Increment(ref heads) <= 2 ? Fault.Unavailable : Fault.Forward;
            }
            if (m == "POST")
            {
                return Interlocked.Increment(ref posts) is 1 or 2 ? Fault.TooMany : Fault.Forward;
            }
            return Fault.Forward;
        }, [], (r, proxy, layers) =>
        {
            Assert.Contains("starting the blob again with a new session", r.StdErr);
            Assert.Contains("resuming from there", r.StdErr);
            Assert.Contains("401 Unauthorized in the middle of the push; credentials re-read", r.StdErr);
            Assert.Contains("retry 1/6", r.StdErr); // the 503s and 429s, through the one retry policy
            // PATCH bytes the registry got: every model layer once, plus at most the half layer the cut inside the registry took,
            // plus the blobs the commit sends (config, base layers): one streamed PATCH each since registry-push's uploads are on
            // the copy engine (they went in a PUT body before)
            long model = layers.Sum() + CommitBlobBytes(_dir.Combine("reference"), _dir.Combine("base"));
            Assert.True(proxy.PatchBytes <= model + layers.Max() / 2 + 1, $"{proxy.PatchBytes} PATCH bytes for {model} model layer and commit blob bytes");
            Assert.True(proxy.PatchBytes >= model);
        });
    }

    [Fact]
    public async Task Chunked_layers_resume_from_the_registry_range_and_restart_only_a_killed_session()
    {
        int patches = 0;
        await RunAsync("faults/chunked", (_, m, _) => m != "PATCH" ? Fault.Forward : Interlocked.Increment(ref patches) switch
        {
            2 => Fault.CutBeforeForward,
            4 => Fault.Unavailable,
            5 => Fault.TooMany,
            7 => Fault.Unauthorized,
            9 => Fault.CutMidForward,
            _ => Fault.Forward,
        }, ["--chunk-size", "1M"], (r, proxy, layers) =>
        {
            Assert.Contains("resuming from there", r.StdErr);
            Assert.Contains("starting the blob again with a new session", r.StdErr);
            Assert.Contains("401 Unauthorized in the middle of the push; credentials re-read", r.StdErr);
            // a killed session costs the chunks of that one layer sent before it, nothing else is sent twice
            long model = layers.Sum();
            Assert.True(proxy.PatchBytes <= model + layers.Max() + (1 << 20), $"{proxy.PatchBytes} PATCH bytes for {model} model layer bytes");
        });
    }
}
