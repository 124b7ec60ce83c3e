using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using ModelCar.Common.IO;
using ModelCar.Packing;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// oci-pack --dry-run (issue 21, first contact): the PUBLISHED binary prints the plan — files → layers
/// (alone or grouped), platforms, per output what it already holds (HEAD for a registry, stat for a
/// layout), the bytes it would send, the limits — and writes nothing: no upload session (a fake
/// registry counts POST/PUT/PATCH/DELETE), no layout, no archive, no layer record. Exit 0 when the
/// real run would start, 1 with the first problem.
/// </summary>
public sealed class DryRunTests : IAsyncLifetime
{
    private readonly TempDir _dir = new("oci-pack-dry");
    private readonly ConcurrentQueue<string> _requests = new();
    private readonly ConcurrentDictionary<string, long> _blobs = new();

    /// <summary>Content served (GET and HEAD) at a path: a base image in one repository of the registry.</summary>
    private readonly ConcurrentDictionary<string, (string MediaType, byte[] Content)> _served = new();
    private TestServer _registry = null!;
    private string _baseLayer = "";

    /// <summary>A registry that answers the ping and blob HEADs (from <see cref="_blobs"/>) and refuses every write.</summary>
    public async Task InitializeAsync()
    {
        _registry = await TestServer.StartAsync(async http =>
        {
            var path = http.Request.Path.Value ?? "";
            _requests.Enqueue($"{http.Request.Method} {path}");
            if (path == "/v2/" || path == "/v2")
            {
                http.Response.StatusCode = 200;
                return;
            }
            if (http.Request.Method is "GET" or "HEAD" && _served.TryGetValue(path, out var served))
            {
                http.Response.StatusCode = 200;
                http.Response.ContentType = served.MediaType;
                http.Response.ContentLength = served.Content.Length;
                http.Response.Headers["Docker-Content-Digest"] = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(served.Content));
                if (http.Request.Method == "GET")
                {
                    await http.Response.Body.WriteAsync(served.Content);
                }
                return;
            }
            var blob = System.Text.RegularExpressions.Regex.Match(path, @"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$");
            if (http.Request.Method == "HEAD" && blob.Success)
            {
                if (_blobs.TryGetValue(blob.Groups[1].Value, out var size))
                {
                    http.Response.StatusCode = 200;
                    http.Response.ContentLength = size;
                    http.Response.Headers["Docker-Content-Digest"] = blob.Groups[1].Value;
                }
                else
                {
                    http.Response.StatusCode = 404;
                }
                return;
            }
            http.Response.StatusCode = 405;
            await http.Response.WriteAsync("{\"errors\":[{\"code\":\"UNSUPPORTED\",\"message\":\"a dry run must not write\"}]}");
        });
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _dir.Dispose();
    }

    private int Writes => _requests.Count(r => !r.StartsWith("HEAD ", StringComparison.Ordinal) && !r.StartsWith("GET ", StringComparison.Ordinal));

    /// <summary>A model of a small-files group and two files of their own (threshold 64K), and a busybox base layout.</summary>
    private (string Model, string Base) Setup()
    {
        var model = _dir.Combine("model");
        _dir.WriteFile("model/config.json", "{\"a\":1}");
        _dir.WriteFile("model/tokenizer.json", TempDir.RandomBytes(10_000, 1));
        _dir.WriteFile("model/model-00001-of-00002.safetensors", TempDir.RandomBytes(100_000, 2));
        _dir.WriteFile("model/model-00002-of-00002.safetensors", TempDir.RandomBytes(200_000, 3));
        var baseDir = _dir.Combine("base");
        Directory.CreateDirectory(baseDir);
        var layer = TestBases.BusyboxLayer();
        TestBases.WriteLayout(baseDir, "1", layer);
        _baseLayer = TestBases.Sha(layer);
        return (model, baseDir);
    }

    private static Task<ToolResult> Pack(params string[] args) => ToolRunner.RunAsync("oci-pack", args);

    [Fact]
    public async Task Dry_run_prints_the_plan_for_a_registry_a_layout_and_an_archive_and_writes_nothing()
    {
        var (model, baseDir) = Setup();
        _blobs[_baseLayer] = new FileInfo(Path.Combine(baseDir, "blobs", "sha256", _baseLayer["sha256:".Length..])).Length; // the registry has the base layer
        var layout = _dir.Combine("out", "layout");
        var archive = _dir.Combine("out", "image.tar");
        var r = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "64K", "--dry-run", "--tls-verify=false",
            "--output", $"docker://{_registry.HostPort}/m/m:1", "--output", $"oci:{layout}:v1", "--output", $"oci-archive:{archive}:v1");
        Assert.True(r.ExitCode == 0, r.ToString());
        var plan = r.StdOut;
        Assert.Contains("dry run: nothing was read from the model, written or uploaded", plan);
        Assert.Contains($"model: {model}: 4 files", plan);
        Assert.Contains("platforms: linux/amd64 ", plan);
        Assert.Contains("model layers: 3 ", plan);
        Assert.Matches(@"1\. /models \(grouped, 2 files\): files 9\.8 KiB|1\. /models \(grouped, 2 files\)", plan);
        Assert.Contains("2. /models/model-00001-of-00002.safetensors (alone)", plan);
        Assert.Contains("3. /models/model-00002-of-00002.safetensors (alone)", plan);
        Assert.Contains("       models/tokenizer.json ", plan);
        Assert.Contains($"docker://{_registry.HostPort}/m/m:1 (registry (HEAD)): has 1 of 4 blobs; would send 3", plan);
        Assert.Contains($"oci:{layout}:v1 (new layout): has 0 of 4 blobs; would write 4", plan);
        Assert.Contains($"oci-archive:{archive}:v1 (new archive): has 0 of 4 blobs; would write 4", plan);
        Assert.Contains($"has  base layer {_baseLayer}", plan);
        Assert.Contains("model bytes to read: ", plan);
        Assert.Contains("largest blob ", plan);
        Assert.EndsWith("the real run would start\n", plan);

        // nothing written anywhere: no upload session, no layout, no archive, no layer record
        Assert.Equal(0, Writes);
        Assert.Contains($"HEAD /v2/m/m/blobs/{_baseLayer}", _requests);
        Assert.False(Directory.Exists(_dir.Combine("out")), "the dry run made the output folder");
        Assert.False(Directory.Exists(Path.Combine(model, LayerDigestRecord.DirectoryName)), "the dry run wrote a layer record");
    }

    [Fact]
    public async Task Dry_run_stops_at_the_first_problem_a_layer_over_max_blob_size_with_exit_1()
    {
        var (model, _) = Setup();
        // scratch: no base layer (busybox's is over the limit too)
        var r = await Pack("--model", model, "--base", "scratch", "--allow-no-shell", "--layer-threshold", "64K", "--dry-run", "--tls-verify=false",
            "--max-blob-size", "150000", "--output", $"docker://{_registry.HostPort}/m/m:1");
        Assert.Equal(1, r.ExitCode);
        var last = r.StdErr.Trim().Split('\n')[^1];
        Assert.StartsWith("oci-pack: error: dry run: the real run would stop: layer /models/model-00002-of-00002.safetensors would be ", last);
        Assert.EndsWith("over the maximum blob size 146.5 KiB (150000 bytes) (--max-blob-size)", last);
        Assert.Contains("maximum blob size 146.5 KiB (150000 bytes): OVER", r.StdOut);
        Assert.Equal(0, Writes);
    }

    /// <summary>After a real pack the layer record knows every digest: the dry run finds them all in the layout (stat) and reads nothing.</summary>
    [Fact]
    public async Task Dry_run_after_a_pack_finds_every_blob_in_the_layout_and_would_read_nothing()
    {
        var (model, baseDir) = Setup();
        var layout = _dir.Combine("layout");
        var packed = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "64K", "--output", $"oci:{layout}:v1");
        Assert.True(packed.ExitCode == 0, packed.ToString());
        var recordBefore = File.ReadAllText(Path.Combine(model, LayerDigestRecord.DirectoryName, LayerDigestRecord.FileName));
        var indexBefore = File.ReadAllText(Path.Combine(layout, "index.json"));

        var r = await Pack("--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "64K", "--dry-run", "--output", $"oci:{layout}:v2");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"oci:{layout}:v2 (existing layout): has 4 of 4 blobs; would write 0, 0 B (0 bytes)", r.StdOut);
        Assert.Contains("model bytes to read: 0 B (0 bytes)", r.StdOut);
        Assert.Contains("(layer record)", r.StdOut);
        Assert.Equal(indexBefore, File.ReadAllText(Path.Combine(layout, "index.json")));
        Assert.Equal(recordBefore, File.ReadAllText(Path.Combine(model, LayerDigestRecord.DirectoryName, LayerDigestRecord.FileName)));
    }

    /// <summary>
    /// Issue 20: the dry run prints the layer budget (the image's layers against --max-layers) and the grouping; a base in
    /// another repository of the output's registry is mounted by the real run (cross-repository mount), so its layers are
    /// counted as mounts, not as bytes to send.
    /// </summary>
    [Fact]
    public async Task Dry_run_prints_the_layer_budget_and_counts_base_layers_on_the_outputs_host_as_mounts_not_sends()
    {
        var (model, baseDir) = Setup();
        // the base image in repository base/bb of the same registry: its manifest by tag and by digest, its config and layer
        var entry = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(baseDir, "index.json"))).RootElement.GetProperty("manifests")[0];
        var manifestDigest = entry.GetProperty("digest").GetString()!;
        foreach (var file in Directory.GetFiles(Path.Combine(baseDir, "blobs", "sha256")))
        {
            _served[$"/v2/base/bb/blobs/sha256:{Path.GetFileName(file)}"] = ("application/octet-stream", File.ReadAllBytes(file));
        }
        var manifest = (entry.GetProperty("mediaType").GetString()!, File.ReadAllBytes(Path.Combine(baseDir, "blobs", "sha256", manifestDigest["sha256:".Length..])));
        _served["/v2/base/bb/manifests/1"] = manifest;
        _served[$"/v2/base/bb/manifests/{manifestDigest}"] = manifest;
        long baseLayerSize = new FileInfo(Path.Combine(baseDir, "blobs", "sha256", _baseLayer["sha256:".Length..])).Length;

        var r = await Pack("--model", model, "--base", $"docker://{_registry.HostPort}/base/bb:1", "--layer-threshold", "64K", "--dry-run", "--tls-verify=false",
            "--max-layers", "3", "--output", $"docker://{_registry.HostPort}/m/m:1");
        Assert.True(r.ExitCode == 0, r.ToString());
        var plan = r.StdOut;
        // 1 base layer + the small files' layer + one group of the two shards = the budget of 3
        Assert.Contains("layer budget: 3 of at most 3 layers (1 base + 2 model); 1 layer(s) group 2 files of at least the threshold (the largest files stay alone)\n", plan);
        Assert.Contains("2. /models (group of 2 files: model-00001-of-00002.safetensors, model-00002-of-00002.safetensors) (grouped, 2 files)", plan);
        var modelLayerBytes = System.Text.RegularExpressions.Regex.Matches(plan, @"layer [0-9.]+ [KMG]?i?B \(([0-9]+) bytes\), digest known once read").Sum(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(modelLayerBytes > 300_000, plan);
        Assert.Contains($"docker://{_registry.HostPort}/m/m:1 (registry (HEAD)): has 0 of 3 blobs; would mount 1 (no bytes sent), send 2, {SizeParser.Format(modelLayerBytes)} ({modelLayerBytes} bytes)", plan);
        Assert.Contains($"mount base layer {_baseLayer} {SizeParser.Format(baseLayerSize)} (from base/bb)", plan);
        Assert.Equal(0, Writes);

        // the default budget with room to spare: no file grouped
        r = await Pack("--model", model, "--base", $"docker://{_registry.HostPort}/base/bb:1", "--layer-threshold", "64K", "--dry-run", "--tls-verify=false",
            "--output", $"docker://{_registry.HostPort}/m/m:1");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("layer budget: 4 of at most 127 layers (1 base + 3 model); no file of at least the threshold shares a layer\n", r.StdOut);
    }

    /// <summary>Free space is a limit for layouts and archives (the file system is a parameter here: no test can fill a disk).</summary>
    [Fact]
    public async Task Plan_refuses_a_layout_whose_file_system_lacks_the_space()
    {
        var (model, _) = Setup();
        var tree = ModelTree.Scan(model, PathFilter.Create([], []));
        var settings = new PackSettings { ModelsPath = "/models", Uid = 0, Gid = 0, User = "1001", LayerThreshold = 64 << 10, Created = DateTimeOffset.UnixEpoch };
        var layers = Packer.Plan(tree, settings);
        var bases = (IReadOnlyList<BaseImage>)[BaseImage.Scratch(PlatformSpec.Default)];
        var need = layers.Sum(l => l.TarSize);
        var outputs = new[] { PlanOutput.Layout("oci:/x/layout", _dir.Combine("layout")), PlanOutput.Archive("oci-archive:/x/a.tar", _dir.Combine("a.tar")) };

        var enough = await PackPlan.CreateAsync(tree, model, bases, layers, null, outputs, null, CancellationToken.None, _ => need + PackPlan.LocalSlackBytes);
        Assert.Empty(enough.Problems);
        var tight = await PackPlan.CreateAsync(tree, model, bases, layers, null, outputs, null, CancellationToken.None, _ => need);
        Assert.Equal(2, tight.Problems.Count);
        Assert.StartsWith($"oci:/x/layout: needs {SizeParser.Format(need)} ({need} bytes) + 1.0 MiB for index, manifests and temp files, but its file system has", tight.Problems[0]);
        Assert.Contains("NOT ENOUGH", tight.Render());
        Assert.EndsWith($"the real run would stop: {tight.Problems[0]}\n", tight.Render());
        Assert.False(File.Exists(_dir.Combine("a.tar")));
    }
}
