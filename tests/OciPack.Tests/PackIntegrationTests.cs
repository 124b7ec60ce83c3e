using ModelCar.Packing;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// Runs the PUBLISHED oci-pack (./build.sh) on a busybox base built from Debian's busybox-static,
/// and lets skopeo and umoci judge the result.
/// </summary>
public sealed class PackIntegrationTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-it");

    public void Dispose() => _dir.Dispose();

    private string BaseLayout(bool withShell = true, bool gzip = true, string? entrypoint = null)
    {
        var path = _dir.Combine($"base-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        TestBases.WriteLayout(path, "1", TestBases.BusyboxLayer(withShell), gzip, entrypoint);
        return path;
    }

    private string Model()
    {
        var m = _dir.Combine("model");
        _dir.WriteFile("model/config.json", """{"architectures":["X"]}""");
        _dir.WriteFile("model/model-00001-of-00002.safetensors", TempDir.RandomBytes(3 << 20, 1));
        _dir.WriteFile("model/model-00002-of-00002.safetensors", TempDir.RandomBytes(2 << 20, 2));
        _dir.WriteFile("model/tokenizer/tokenizer.json", """{"v":1}""");
        _dir.WriteFile("model/.cache/huggingface/download/x.metadata", "cache");
        _dir.WriteFile("model/.hf-fetch/snapshot.json",
            """{"repoId":"acme/tiny","repoType":"model","revision":"main","commit":"0123456789abcdef0123456789abcdef01234567","endpoint":"https://huggingface.co","files":[]}""");
        File.CreateSymbolicLink(Path.Combine(m, "tokenizer", "config.json"), "../config.json");
        return m;
    }

    private static Task<ToolResult> Pack(IEnumerable<string> args, IDictionary<string, string?>? env = null) =>
        ToolRunner.RunAsync("oci-pack", args, env ?? new Dictionary<string, string?> { ["SOURCE_DATE_EPOCH"] = null });

    private static async Task<ToolResult> Peer(string tool, params string[] args)
    {
        var r = await PeerTools.RunAsync(tool, args);
        Assert.True(r.ExitCode == 0, $"{tool} {string.Join(' ', args)}\n{r}");
        return r;
    }

    [Fact]
    public async Task Packs_a_modelcar_that_skopeo_and_umoci_accept()
    {
        var model = Model();
        var baseDir = BaseLayout();
        var output = _dir.Combine("out");
        var results = _dir.Combine("results");
        var r = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:v1", "--owner", "1000:0",
            "--layer-threshold", "1M", "--label", "com.example.model=tiny", "--annotation", "com.example.note=hello+world", "--results-dir", results]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var digest = r.StdOut.Trim();
        Assert.Matches("^sha256:[0-9a-f]{64}$", digest);
        Assert.Equal(digest, File.ReadAllText(Path.Combine(results, "IMAGE_DIGEST")));
        long imageSize = long.Parse(File.ReadAllText(Path.Combine(results, "IMAGE_SIZE")));

        var inspect = JsonDocument.Parse((await Peer("skopeo", "inspect", $"oci:{output}:v1")).StdOut).RootElement;
        Assert.Equal(digest, inspect.GetProperty("Digest").GetString());
        Assert.Equal(4, inspect.GetProperty("Layers").GetArrayLength()); // base + small files + 2 big files
        Assert.Equal("tiny", inspect.GetProperty("Labels").GetProperty("com.example.model").GetString());
        Assert.Equal("kept", inspect.GetProperty("Labels").GetProperty("base.label").GetString());
        Assert.Contains(inspect.GetProperty("Env").EnumerateArray(), e => e.GetString()!.StartsWith("PATH=", StringComparison.Ordinal));

        var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(output, "blobs", "sha256", digest[7..]))).RootElement;
        var annotations = manifest.GetProperty("annotations");
        Assert.Equal("https://huggingface.co/acme/tiny", annotations.GetProperty("org.opencontainers.image.source").GetString());
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", annotations.GetProperty("org.opencontainers.image.revision").GetString());
        Assert.Equal("hello+world", annotations.GetProperty("com.example.note").GetString());
        Assert.Contains("hello+world", File.ReadAllText(Path.Combine(output, "blobs", "sha256", digest[7..]))); // Go-style: '+' not escaped
        var layers = manifest.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal("application/vnd.oci.image.layer.v1.tar+gzip", layers[0].GetProperty("mediaType").GetString()); // base kept as is
        Assert.Equal(["/models", "/models/model-00001-of-00002.safetensors", "/models/model-00002-of-00002.safetensors"],
            layers.Skip(1).Select(l => l.GetProperty("annotations").GetProperty("org.opencontainers.image.title").GetString()));
        Assert.All(layers.Skip(1), l => Assert.Equal("application/vnd.oci.image.layer.v1.tar", l.GetProperty("mediaType").GetString()));
        Assert.Equal(imageSize, layers.Sum(l => l.GetProperty("size").GetInt64()) + manifest.GetProperty("config").GetProperty("size").GetInt64()
            + new FileInfo(Path.Combine(output, "blobs", "sha256", digest[7..])).Length);

        var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(output, "blobs", "sha256", manifest.GetProperty("config").GetProperty("digest").GetString()![7..]))).RootElement;
        Assert.Equal("1001", config.GetProperty("config").GetProperty("User").GetString());
        Assert.Equal("1970-01-01T00:00:00Z", config.GetProperty("created").GetString());
        Assert.Equal(4, config.GetProperty("rootfs").GetProperty("diff_ids").GetArrayLength());

        await Peer("skopeo", "copy", $"oci:{output}:v1", $"dir:{_dir.Combine("dircopy")}");
        Assert.True(File.Exists(_dir.Combine("dircopy", "manifest.json")));

        var bundle = _dir.Combine("bundle");
        await Peer("umoci", "unpack", "--image", $"{output}:v1", bundle);
        var rootfs = Path.Combine(bundle, "rootfs");
        Assert.True(File.Exists(Path.Combine(rootfs, "bin", "sh")), "base /bin/sh missing after unpack");
        var models = Path.Combine(rootfs, "models");
        var found = Directory.EnumerateFileSystemEntries(models, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(models, p)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer", "tokenizer/config.json", "tokenizer/tokenizer.json"], found);
        Assert.Equal(File.ReadAllBytes(Path.Combine(model, "model-00001-of-00002.safetensors")), File.ReadAllBytes(Path.Combine(models, "model-00001-of-00002.safetensors")));
        Assert.Equal("../config.json", new FileInfo(Path.Combine(models, "tokenizer", "config.json")).LinkTarget);
        foreach (var f in new[] { "config.json", "model-00002-of-00002.safetensors", "tokenizer/tokenizer.json" })
        {
            var st = await Peer("stat", "-c", "%a %u %g", Path.Combine(models, f));
            Assert.Equal("644 1000 0", st.StdOut.Trim());
        }
        foreach (var d in new[] { ".", "tokenizer" })
        {
            var st = await Peer("stat", "-c", "%a %u %g", Path.Combine(models, d));
            Assert.Equal("755 1000 0", st.StdOut.Trim());
        }

        // the same image as an oci-archive, written under umask 077: same digest, file 0644, skopeo reads it
        var archive = _dir.Combine("model.tar");
        var ar = await PeerTools.RunAsync("sh", ["-c", "umask 077; exec \"$0\" \"$@\"", ToolRunner.PathOf("oci-pack"), "--model", model, "--base", $"oci:{baseDir}:1",
            "--output", $"oci-archive:{archive}:v1", "--owner", "1000:0", "--layer-threshold", "1M", "--label", "com.example.model=tiny", "--annotation", "com.example.note=hello+world"]);
        Assert.True(ar.ExitCode == 0, ar.ToString());
        Assert.Equal(digest, ar.StdOut.Trim());
        Assert.Equal("644", (await Peer("stat", "-c", "%a", archive)).StdOut.Trim());
        var fromArchive = JsonDocument.Parse((await Peer("skopeo", "inspect", $"oci-archive:{archive}:v1")).StdOut).RootElement;
        Assert.Equal(digest, fromArchive.GetProperty("Digest").GetString());
        Assert.Empty(Directory.GetFiles(_dir.Path, ".model.tar*"));
        // skopeo copy verifies every blob's digest: the parallel-written regions and late headers are right
        await Peer("skopeo", "copy", $"oci-archive:{archive}:v1", $"dir:{_dir.Combine("dircopy2")}");
        Assert.Equal(File.ReadAllBytes(Path.Combine(output, "blobs", "sha256", digest[7..])), File.ReadAllBytes(_dir.Combine("dircopy2", "manifest.json")));
    }

    [Fact]
    public async Task Packing_is_reproducible_and_tags_accumulate()
    {
        var model = Model();
        var baseDir = BaseLayout();
        var a = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("a")}:one"]);
        var b = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("b")}:one"]);
        Assert.True(a.ExitCode == 0 && b.ExitCode == 0, a + "\n" + b);
        Assert.Equal(a.StdOut, b.StdOut);

        // touching the files (mtimes) and packing again into the same layout changes nothing; blobs are not rewritten
        foreach (var f in Directory.GetFiles(model, "*", SearchOption.AllDirectories))
        {
            File.SetLastWriteTimeUtc(f, DateTime.UtcNow.AddHours(-5));
        }
        var blobs = Directory.GetFiles(_dir.Combine("a", "blobs", "sha256")).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        await Task.Delay(1100);
        var again = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("a")}:two"]);
        Assert.Equal(a.StdOut, again.StdOut);
        Assert.All(blobs, kv => Assert.Equal(kv.Value, File.GetLastWriteTimeUtc(kv.Key)));
        var index = JsonDocument.Parse(File.ReadAllBytes(_dir.Combine("a", "index.json"))).RootElement.GetProperty("manifests").EnumerateArray()
            .Select(m => m.GetProperty("annotations").GetProperty("org.opencontainers.image.ref.name").GetString()).ToList();
        Assert.Equal(["one", "two"], index);
        Assert.Empty(Directory.GetFiles(_dir.Combine("a", "blobs", "sha256"), ".tmp-*"));

        var epoch = await Pack(["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("c")}:one"],
            new Dictionary<string, string?> { ["SOURCE_DATE_EPOCH"] = "1700000000" });
        Assert.True(epoch.ExitCode == 0, epoch.ToString());
        Assert.NotEqual(a.StdOut, epoch.StdOut);
        var inspect = JsonDocument.Parse((await Peer("skopeo", "inspect", $"oci:{_dir.Combine("c")}:one")).StdOut).RootElement;
        Assert.Equal("2023-11-14T22:13:20Z", inspect.GetProperty("Created").GetString());
    }

    [Fact]
    public async Task Sparse_9_GiB_file_packs_with_a_gnu_base256_size()
    {
        var model = _dir.Combine("big-model");
        Directory.CreateDirectory(model);
        _dir.WriteFile("big-model/config.json", "{}");
        await Peer("truncate", "-s", "9G", Path.Combine(model, "huge.bin"));
        var output = _dir.Combine("big-out");
        var r = await Pack(["--model", model, "--base", $"oci:{BaseLayout(gzip: false)}:1", "--output", $"oci:{output}:big"]);
        Assert.True(r.ExitCode == 0, r.ToString());

        var raw = JsonDocument.Parse((await Peer("skopeo", "inspect", "--raw", $"oci:{output}:big")).StdOut).RootElement;
        var bigLayer = raw.GetProperty("layers").EnumerateArray().Single(l => l.GetProperty("size").GetInt64() > 9L << 30);
        Assert.Equal(9L << 30, bigLayer.GetProperty("size").GetInt64() - 2 * 512 - 1024); // models/ + huge.bin headers, no padding, end blocks
        var blob = Path.Combine(output, "blobs", "sha256", bigLayer.GetProperty("digest").GetString()![7..]);
        var header = new byte[1024];
        using (var f = File.OpenRead(blob))
        {
            f.ReadExactly(header);
        }
        Assert.Equal(0x80, header[512 + 124]); // second entry (after models/) is huge.bin with a base-256 size

        var bundle = _dir.Combine("big-bundle");
        await Peer("umoci", "unpack", "--image", $"{output}:big", bundle);
        Assert.Equal(9L << 30, new FileInfo(Path.Combine(bundle, "rootfs", "models", "huge.bin")).Length);
    }
}
