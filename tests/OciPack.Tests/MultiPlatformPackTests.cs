using System.Formats.Tar;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// oci-pack --platform LIST / all on the two-platform busybox base (Debian's busybox-static for amd64
/// and arm64): the PUBLISHED binary writes an image index, one manifest per platform over the same
/// model layer blobs (stored once), each with its platform's base layers and config; skopeo picks
/// the arm64 manifest with --override-arch and umoci unpacks /models from each platform byte-equal
/// to the source.
/// </summary>
public sealed class MultiPlatformPackTests : IDisposable
{
    private static readonly string[] TwoPlatforms = ["--platform", "linux/amd64,linux/arm64"];

    private readonly TempDir _dir = new("oci-pack-multi");

    public void Dispose() => _dir.Dispose();

    private string Base(bool arm64Shell = true)
    {
        var path = _dir.Combine($"base-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        TestBases.WriteTwoPlatformBusybox(path, "1", arm64Shell);
        return path;
    }

    private string Model()
    {
        var m = _dir.Combine("model");
        if (!Directory.Exists(m))
        {
            _dir.WriteFile("model/config.json", """{"architectures":["X"]}""");
            _dir.WriteFile("model/model-00001-of-00002.safetensors", TempDir.RandomBytes(3 << 20, 11));
            _dir.WriteFile("model/model-00002-of-00002.safetensors", TempDir.RandomBytes(2 << 20, 12));
            _dir.WriteFile("model/tokenizer/tokenizer.json", """{"v":1}""");
        }
        return m;
    }

    private static Task<ToolResult> Pack(params string[] args) =>
        ToolRunner.RunAsync("oci-pack", args, new Dictionary<string, string?> { ["SOURCE_DATE_EPOCH"] = null });

    private static async Task<ToolResult> Peer(string tool, params string[] args)
    {
        var r = await PeerTools.RunAsync(tool, args);
        Assert.True(r.ExitCode == 0, $"{tool} {string.Join(' ', args)}\n{r}");
        return r;
    }

    private static JsonElement Json(byte[] bytes) => JsonDocument.Parse(bytes).RootElement.Clone();

    private static byte[] Blob(string layout, string digest) => File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", digest["sha256:".Length..]));

    private static string[] LayerDigests(JsonElement manifest) => [.. manifest.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()!)];

    /// <summary>The base's manifest for an architecture, from its index.</summary>
    private static JsonElement BaseManifest(string baseDir, string arch)
    {
        var root = Json(File.ReadAllBytes(Path.Combine(baseDir, "index.json"))).GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        var entry = Json(Blob(baseDir, root)).GetProperty("manifests").EnumerateArray().Single(m => m.GetProperty("platform").GetProperty("architecture").GetString() == arch);
        return Json(Blob(baseDir, entry.GetProperty("digest").GetString()!));
    }

    /// <summary>Checks the index: per platform its base layers then the shared model layers, its config's platform; returns the child manifests by architecture.</summary>
    private static Dictionary<string, (string Digest, JsonElement Manifest)> CheckIndex(string layout, string indexDigest, string baseDir, int modelLayers)
    {
        var index = Json(Blob(layout, indexDigest));
        Assert.Equal("application/vnd.oci.image.index.v1+json", index.GetProperty("mediaType").GetString());
        var children = new Dictionary<string, (string, JsonElement)>();
        string[]? shared = null;
        foreach (var entry in index.GetProperty("manifests").EnumerateArray())
        {
            Assert.Equal("application/vnd.oci.image.manifest.v1+json", entry.GetProperty("mediaType").GetString());
            var arch = entry.GetProperty("platform").GetProperty("architecture").GetString()!;
            Assert.Equal("linux", entry.GetProperty("platform").GetProperty("os").GetString());
            var digest = entry.GetProperty("digest").GetString()!;
            var manifest = Json(Blob(layout, digest));
            var layers = LayerDigests(manifest);
            var baseLayers = LayerDigests(BaseManifest(baseDir, arch));
            Assert.Equal(baseLayers, layers[..baseLayers.Length]);
            var model = layers[baseLayers.Length..];
            Assert.Equal(modelLayers, model.Length);
            shared ??= model;
            Assert.Equal(shared, model); // the same model blobs under every platform
            var config = Json(Blob(layout, manifest.GetProperty("config").GetProperty("digest").GetString()!));
            Assert.Equal(arch, config.GetProperty("architecture").GetString());
            Assert.Equal("linux", config.GetProperty("os").GetString());
            Assert.Equal(layers.Length, config.GetProperty("rootfs").GetProperty("diff_ids").GetArrayLength());
            children[arch] = (digest, manifest);
        }
        Assert.Equal(["amd64", "arm64"], children.Keys.Order());
        return children;
    }

    /// <summary>skopeo --override-arch ARCH copy picks that platform's manifest; umoci unpacks it; /models equals the source.</summary>
    private async Task CheckPlatformCopies(string source, Dictionary<string, (string Digest, JsonElement Manifest)> children, string model, params string[] skopeoArgs)
    {
        foreach (var (arch, (digest, _)) in children)
        {
            var single = _dir.Combine($"copy-{arch}-{Guid.NewGuid():N}");
            // --preserve-digests: skopeo would otherwise gzip the layers for an oci: destination (a new manifest)
            await Peer("skopeo", ["--override-arch", arch, "--override-os", "linux", "copy", "--preserve-digests", .. skopeoArgs, source, $"oci:{single}:x"]);
            var copied = Json(File.ReadAllBytes(Path.Combine(single, "index.json"))).GetProperty("manifests")[0];
            Assert.Equal(digest, copied.GetProperty("digest").GetString()); // the very manifest, not a rewrite
            var bundle = _dir.Combine($"bundle-{arch}-{Guid.NewGuid():N}");
            await Peer("umoci", "unpack", "--image", $"{single}:x", bundle);
            var models = Path.Combine(bundle, "rootfs", "models");
            // the layer record (MODEL/.oci-pack/, written by the pack) is never packed
            var sourceFiles = Directory.EnumerateFiles(model, "*", SearchOption.AllDirectories)
                .Where(f => !Path.GetRelativePath(model, f).StartsWith(ModelCar.Packing.LayerDigestRecord.DirectoryName + "/", StringComparison.Ordinal)).ToList();
            foreach (var file in sourceFiles)
            {
                var rel = Path.GetRelativePath(model, file);
                Assert.True(File.ReadAllBytes(file).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(models, rel))), $"{arch}: /models/{rel} differs");
            }
            Assert.Equal(sourceFiles.Count, Directory.EnumerateFiles(models, "*", SearchOption.AllDirectories).Count());
            // the platform's own busybox, not the other's
            var busybox = File.ReadAllBytes(Path.Combine(bundle, "rootfs", "bin", "busybox"));
            Assert.Equal(File.ReadAllBytes(Busybox.PathFor(arch)), busybox);
        }
    }

    [Fact]
    public async Task Two_platforms_into_a_layout_make_an_index_over_shared_model_layers_that_skopeo_and_umoci_read_per_platform()
    {
        var model = Model();
        var baseDir = Base();
        var output = _dir.Combine("out");
        var results = _dir.Combine("results");
        var r = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:v1", "--layer-threshold", "1M", "--results-dir", results, .. TwoPlatforms]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var digest = r.StdOut.Trim();
        Assert.Equal(digest, File.ReadAllText(Path.Combine(results, "IMAGE_DIGEST")));

        // the tag names the index
        var tagged = Json(File.ReadAllBytes(Path.Combine(output, "index.json"))).GetProperty("manifests").EnumerateArray().Single();
        Assert.Equal(digest, tagged.GetProperty("digest").GetString());
        Assert.Equal("application/vnd.oci.image.index.v1+json", tagged.GetProperty("mediaType").GetString());
        Assert.Equal("v1", tagged.GetProperty("annotations").GetProperty("org.opencontainers.image.ref.name").GetString());

        var children = CheckIndex(output, digest, baseDir, modelLayers: 3);
        // every blob once: 2 base layers + 3 model layers + 2 configs + 2 manifests + the index
        Assert.Equal(10, Directory.EnumerateFiles(Path.Combine(output, "blobs", "sha256")).Count());
        long imageSize = Directory.EnumerateFiles(Path.Combine(output, "blobs", "sha256")).Sum(f => new FileInfo(f).Length);
        Assert.Equal(imageSize.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(results, "IMAGE_SIZE")));

        await CheckPlatformCopies($"oci:{output}:v1", children, model);

        // reproducible: the same inputs give the same index digest, here from a fresh output
        var again = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("out2")}:v1", "--layer-threshold", "1M", .. TwoPlatforms]);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(digest, again.StdOut.Trim());

        // one platform of the same base is a plain manifest: the index's arm64 child, byte for byte
        var one = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("out-arm")}:v1", "--layer-threshold", "1M", "--platform", "linux/arm64"]);
        Assert.True(one.ExitCode == 0, one.ToString());
        Assert.Equal(children["arm64"].Digest, one.StdOut.Trim());
    }

    /// <summary>
    /// Issue 14's "done when": the two-platform index from the local two-platform base, pushed by the one
    /// pass (with a layout from the same read), pulled back per platform by skopeo from the registry and checked.
    /// </summary>
    [Fact]
    public async Task Two_platforms_pushed_to_a_registry_are_the_layouts_index_and_skopeo_pulls_each_platform_back()
    {
        await using var registry = new RegistryContainer();
        await registry.StartAsync();
        var model = Model();
        var baseDir = Base();
        var layout = _dir.Combine("out-reg");
        var results = _dir.Combine("results-reg");
        var r = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M", "--results-dir", results,
            "--output", $"docker://{registry.HostPort}/models/multi:v1", "--output", $"oci:{layout}:v1", "--tls-verify=false", .. TwoPlatforms]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var digest = lines[1];
        Assert.Equal($"{registry.HostPort}/models/multi@{digest}", lines[0]);
        Assert.Equal(digest, File.ReadAllText(Path.Combine(results, "IMAGE_DIGEST")));
        Assert.Equal("linux/amd64,linux/arm64", File.ReadAllText(Path.Combine(results, "IMAGE_PLATFORMS")));

        // the registry serves the index under the tag, with the layout's digest
        var inspect = await Peer("skopeo", "inspect", "--raw", "--tls-verify=false", $"docker://{registry.HostPort}/models/multi:v1");
        Assert.Equal(System.Text.Encoding.UTF8.GetString(Blob(layout, digest)), inspect.StdOut.TrimEnd('\n'));
        var children = CheckIndex(layout, digest, baseDir, modelLayers: 3);
        await CheckPlatformCopies($"docker://{registry.HostPort}/models/multi:v1", children, model, "--src-tls-verify=false");
    }

    [Fact]
    public async Task Two_platforms_into_an_oci_archive_store_each_model_blob_once_and_skopeo_picks_arm64()
    {
        var model = Model();
        var baseDir = Base();
        var archive = _dir.Combine("image.tar");
        var r = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci-archive:{archive}:v1", "--layer-threshold", "1M", .. TwoPlatforms]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var digest = r.StdOut.Trim();

        var names = new List<string>();
        var unpacked = _dir.Combine("unpacked");
        using (var stream = File.OpenRead(archive))
        using (var tar = new TarReader(stream))
        {
            while (tar.GetNextEntry() is { } e)
            {
                names.Add(e.Name);
                if (e.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(unpacked, e.Name))!);
                    e.ExtractToFile(Path.Combine(unpacked, e.Name), overwrite: false);
                }
            }
        }
        Assert.Equal(names.Count, names.Distinct().Count()); // no blob written twice
        Assert.Equal(10, names.Count(n => n.StartsWith("blobs/sha256/", StringComparison.Ordinal) && n.Length > "blobs/sha256/".Length));
        var children = CheckIndex(unpacked, digest, baseDir, modelLayers: 3);

        // the archive's index is the layout's: same digest either way
        var layout = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("out")}:v1", "--layer-threshold", "1M", .. TwoPlatforms]);
        Assert.Equal(digest, layout.StdOut.Trim());

        await CheckPlatformCopies($"oci-archive:{archive}:v1", children, model);
    }

    [Fact]
    public async Task Platform_all_takes_every_platform_with_sh()
    {
        var model = Model();
        var both = Base();
        var list = await Pack(["--model", model, "--base", $"oci:{both}:1", "--output", $"oci:{_dir.Combine("a")}:v1", .. TwoPlatforms]);
        var all = await Pack(["--model", model, "--base", $"oci:{both}:1", "--output", $"oci:{_dir.Combine("b")}:v1", "--platform", "all"]);
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.True(all.ExitCode == 0, all.ToString());
        Assert.Equal(list.StdOut.Trim(), all.StdOut.Trim());

        // the arm64 image has no sh: 'all' leaves it out (one platform left: a plain manifest), a list naming it fails
        var noArmShell = Base(arm64Shell: false);
        var amd = await Pack(["--model", model, "--base", $"oci:{noArmShell}:1", "--output", $"oci:{_dir.Combine("c")}:v1", "--platform", "linux/amd64"]);
        var allButArm = await Pack(["--model", model, "--base", $"oci:{noArmShell}:1", "--output", $"oci:{_dir.Combine("d")}:v1", "--platform", "all"]);
        Assert.True(allButArm.ExitCode == 0, allButArm.ToString());
        Assert.Equal(amd.StdOut.Trim(), allButArm.StdOut.Trim());
        Assert.Contains("platform linux/arm64 left out", allButArm.StdErr);

        var listed = await Pack(["--model", model, "--base", $"oci:{noArmShell}:1", "--output", $"oci:{_dir.Combine("e")}:v1", .. TwoPlatforms]);
        Assert.Equal(1, listed.ExitCode);
        Assert.Contains("(linux/arm64) has no /bin/sh", listed.StdErr);
        Assert.False(File.Exists(_dir.Combine("e", "index.json")));

        // --allow-no-shell: every platform
        var allowed = await Pack(["--model", model, "--base", $"oci:{noArmShell}:1", "--output", $"oci:{_dir.Combine("f")}:v1", "--platform", "all", "--allow-no-shell"]);
        Assert.True(allowed.ExitCode == 0, allowed.ToString());
        var tagged = Json(File.ReadAllBytes(_dir.Combine("f", "index.json"))).GetProperty("manifests")[0];
        Assert.Equal("application/vnd.oci.image.index.v1+json", tagged.GetProperty("mediaType").GetString());
        Assert.Equal(2, Json(Blob(_dir.Combine("f"), tagged.GetProperty("digest").GetString()!)).GetProperty("manifests").GetArrayLength());
    }

    [Theory]
    [InlineData("linux/amd64,", 2, "empty entry")]
    [InlineData("linux", 2, "is not OS/ARCH")]
    [InlineData("linux/amd64,linux/s390x", 1, "no manifest for platform linux/s390x")]
    public async Task Bad_platform_lists_fail_with_one_line(string platforms, int exit, string message)
    {
        var r = await Pack("--model", Model(), "--base", $"oci:{Base()}:1", "--output", $"oci:{_dir.Combine("x")}:v1", "--platform", platforms);
        Assert.Equal(exit, r.ExitCode);
        Assert.Contains(message, r.StdErr);
    }

    [Fact]
    public async Task A_single_manifest_base_cannot_give_two_platforms_and_scratch_needs_named_platforms()
    {
        var single = _dir.Combine("single");
        TestBases.WriteLayout(single, "1", TestBases.BusyboxLayer());
        var r = await Pack("--model", Model(), "--base", $"oci:{single}:1", "--output", $"oci:{_dir.Combine("x")}:v1", "--platform", "linux/amd64,linux/arm64");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not an index", r.StdErr);

        var all = await Pack("--model", Model(), "--base", "scratch", "--allow-no-shell", "--output", $"oci:{_dir.Combine("y")}:v1", "--platform", "all");
        Assert.Equal(2, all.ExitCode);
        var two = await Pack("--model", Model(), "--base", "scratch", "--allow-no-shell", "--output", $"oci:{_dir.Combine("z")}:v1", "--platform", "linux/amd64,linux/arm64");
        Assert.True(two.ExitCode == 0, two.ToString());
        var tagged = Json(File.ReadAllBytes(_dir.Combine("z", "index.json"))).GetProperty("manifests")[0];
        var index = Json(Blob(_dir.Combine("z"), tagged.GetProperty("digest").GetString()!));
        Assert.Equal(["amd64", "arm64"], index.GetProperty("manifests").EnumerateArray().Select(m => m.GetProperty("platform").GetProperty("architecture").GetString()));
    }
}
