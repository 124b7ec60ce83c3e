using System.Security.Cryptography;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// Provenance that travels with the image (published oci-pack): each model layer carries the sha256
/// of its file(s) beside org.opencontainers.image.title — hf-fetch's verified record when there is
/// one, else computed — and every manifest (and the index) names its base with
/// org.opencontainers.image.base.digest (.base.name for registry bases).
/// </summary>
public sealed class ProvenanceTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-prov");

    public void Dispose() => _dir.Dispose();

    private static string Hex(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    private static JsonElement Json(string path) => JsonDocument.Parse(File.ReadAllBytes(path)).RootElement.Clone();

    private static JsonElement Blob(string layout, string digest) => Json(Path.Combine(layout, "blobs", "sha256", digest["sha256:".Length..]));

    private static JsonElement Root(string layout) => Blob(layout, Json(Path.Combine(layout, "index.json")).GetProperty("manifests")[0].GetProperty("digest").GetString()!);

    private static Dictionary<string, string> Annotations(JsonElement e) =>
        e.TryGetProperty("annotations", out var a) ? a.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!) : [];

    [Fact]
    public async Task Model_layers_carry_each_files_sha256_from_hf_fetchs_record_or_computed_and_manifests_name_their_base()
    {
        var weights = TempDir.RandomBytes(2 << 20, 31);
        var other = TempDir.RandomBytes((1 << 20) + 7, 32);
        var config = """{"model_type":"x"}"""u8.ToArray();
        _dir.WriteFile("model/model.safetensors", weights);
        _dir.WriteFile("model/other.bin", other);
        _dir.WriteFile("model/config.json", config);
        _dir.WriteFile("model/tok/vocab.txt", "a b c");
        // model.safetensors has hf-fetch's verified sha256 (checked against the inline hash); other.bin has none
        var recorded = Hex(weights);
        _dir.WriteFile("model/.hf-fetch/snapshot.json", $$"""
            {"repoId":"acme/tiny","repoType":"model","revision":"main","commit":"0123456789abcdef0123456789abcdef01234567","endpoint":"https://huggingface.co",
             "files":[{"path":"model.safetensors","size":{{weights.Length}},"sha256":"{{recorded}}","gitOid":null},
                      {"path":"config.json","size":{{config.Length}},"sha256":null,"gitOid":"646033483f72539ce94fa14b3d3bce7188ffbec9"},
                      {"path":"other.bin","size":{{other.Length}},"sha256":null,"gitOid":"746033483f72539ce94fa14b3d3bce7188ffbec9"},
                      {"path":"tok/vocab.txt","size":5,"sha256":null,"gitOid":"846033483f72539ce94fa14b3d3bce7188ffbec9"}]}
            """);
        var baseDir = _dir.Combine("base");
        var baseIndex = TestBases.WriteTwoPlatformBusybox(baseDir, "1");

        // one platform
        var single = _dir.Combine("single");
        var r = await ToolRunner.RunAsync("oci-pack", "--model", _dir.Combine("model"), "--base", $"oci:{baseDir}:1", "--output", $"oci:{single}:v1", "--layer-threshold", "1M");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("second read", r.StdErr);
        var manifest = Root(single);
        var layers = manifest.GetProperty("layers").EnumerateArray().Skip(1).ToList(); // after the base's one layer
        var byTitle = layers.ToDictionary(l => Annotations(l)["org.opencontainers.image.title"], Annotations);
        Assert.Equal(recorded, byTitle["/models/model.safetensors"]["io.modelcar.file.sha256"]);
        Assert.Equal(Hex(other), byTitle["/models/other.bin"]["io.modelcar.file.sha256"]);
        var smallFiles = JsonDocument.Parse(byTitle["/models"]["io.modelcar.files.sha256"]).RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString());
        Assert.Equal(new Dictionary<string, string?> { ["config.json"] = Hex(config), ["tok/vocab.txt"] = Hex("a b c"u8.ToArray()) }, smallFiles);

        var amd64Base = TestBases.Sha(File.ReadAllBytes(Path.Combine(baseDir, "blobs", "sha256",
            Blob(baseDir, baseIndex).GetProperty("manifests")[0].GetProperty("digest").GetString()!["sha256:".Length..])));
        var annotations = Annotations(manifest);
        Assert.Equal(amd64Base, annotations["org.opencontainers.image.base.digest"]);
        Assert.False(annotations.ContainsKey("org.opencontainers.image.base.name")); // a local path is no reference
        Assert.Equal("https://huggingface.co/acme/tiny", annotations["org.opencontainers.image.source"]);
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", annotations["org.opencontainers.image.revision"]);

        // two platforms: each manifest names its platform's base manifest, the index the base index
        var multi = _dir.Combine("multi");
        r = await ToolRunner.RunAsync("oci-pack", "--model", _dir.Combine("model"), "--base", $"oci:{baseDir}:1", "--output", $"oci:{multi}:v1", "--layer-threshold", "1M", "--platform", "linux/amd64,linux/arm64");
        Assert.True(r.ExitCode == 0, r.ToString());
        var index = Root(multi);
        Assert.Equal(baseIndex, Annotations(index)["org.opencontainers.image.base.digest"]);
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", Annotations(index)["org.opencontainers.image.revision"]);
        var baseEntries = Blob(baseDir, baseIndex).GetProperty("manifests").EnumerateArray().Select(m => m.GetProperty("digest").GetString()).ToList();
        var children = index.GetProperty("manifests").EnumerateArray().Select(m => Blob(multi, m.GetProperty("digest").GetString()!)).ToList();
        Assert.Equal(baseEntries, children.Select(c => Annotations(c)["org.opencontainers.image.base.digest"]));
        // the model layers (with their annotations) are the same descriptors in both
        Assert.Equal(children[0].GetProperty("layers").EnumerateArray().Skip(1).Select(l => l.GetRawText()), children[1].GetProperty("layers").EnumerateArray().Skip(1).Select(l => l.GetRawText()));
        Assert.Equal(layers.Select(l => l.GetRawText()), children[0].GetProperty("layers").EnumerateArray().Skip(1).Select(l => l.GetRawText()));
    }

    private static async Task<string> Sha256Sum(string file)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sha256sum", [file]) { RedirectStandardOutput = true })!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.Equal(0, p.ExitCode);
        return output.Split(' ')[0];
    }

    /// <summary>A model of one big file and two small ones (layer threshold 1M), and a single-layer base.</summary>
    private (string Model, string Base) SmallModel()
    {
        _dir.WriteFile("m/weights.bin", TempDir.RandomBytes((3 << 20) + 11, 41));
        _dir.WriteFile("m/config.json", """{"model_type":"y"}""");
        _dir.WriteFile("m/sub/tokenizer.json", """{"t":[1,2,3]}""");
        var baseDir = _dir.Combine("base");
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer());
        return (_dir.Combine("m"), baseDir);
    }

    /// <summary>Title → that layer's file sha256 annotations (relative path → sha256), one-file layers and grouped ones alike.</summary>
    private static Dictionary<string, Dictionary<string, string>> FileAnnotations(JsonElement manifest) =>
        manifest.GetProperty("layers").EnumerateArray().Skip(1).Select(Annotations).ToDictionary(a => a["org.opencontainers.image.title"], a =>
            a.TryGetValue("io.modelcar.file.sha256", out var one)
                ? new Dictionary<string, string> { [a["org.opencontainers.image.title"]["/models/".Length..]] = one }
                : JsonDocument.Parse(a["io.modelcar.files.sha256"]).RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!));

    [Fact]
    public async Task Each_layers_file_sha256_equals_sha256sum_of_the_file_hashed_in_the_one_read()
    {
        var (model, baseDir) = SmallModel();
        var output = _dir.Combine("out");
        var r = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:v1", "--layer-threshold", "1M", "--verbose");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("second read", r.StdErr);
        var files = FileAnnotations(Root(output));
        Assert.Equal(["/models", "/models/weights.bin"], files.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["config.json", "sub/tokenizer.json"], files["/models"].Keys.Order(StringComparer.Ordinal));
        foreach (var (_, byPath) in files)
        {
            foreach (var (path, sha) in byPath)
            {
                Assert.Equal(await Sha256Sum(Path.Combine(model, path)), sha);
            }
        }
    }

    [Fact]
    public async Task An_unchanged_rerun_annotates_from_the_layer_record_without_reading_the_files()
    {
        var (model, baseDir) = SmallModel();
        var output = _dir.Combine("out");
        var state = _dir.Combine("state");
        string[] args = ["--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:v1", "--layer-threshold", "1M", "--state-dir", state];
        var first = await ToolRunner.RunAsync("oci-pack", args);
        Assert.True(first.ExitCode == 0, first.ToString());
        var digest = first.StdOut.Trim();
        var annotations = FileAnnotations(Root(output));
        var sums = new Dictionary<string, string>();
        foreach (var path in new[] { "weights.bin", "config.json", "sub/tokenizer.json" })
        {
            sums[path] = await Sha256Sum(Path.Combine(model, path));
        }

        // every file rewritten in place with other bytes, same size, mtime and inode (the layer record's
        // key): a run that read any file (to pack or to hash it) would give other annotations and another digest
        foreach (var path in sums.Keys.Select(p => Path.Combine(model, p)))
        {
            var mtime = File.GetLastWriteTimeUtc(path);
            var length = new FileInfo(path).Length;
            using (var f = new FileStream(path, FileMode.Open, FileAccess.Write))
            {
                f.Write(TempDir.RandomBytes((int)length, 77));
            }
            File.SetLastWriteTimeUtc(path, mtime);
            Assert.NotEqual(sums[Path.GetRelativePath(model, path)], await Sha256Sum(path));
        }
        var second = await ToolRunner.RunAsync("oci-pack", args);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(digest, second.StdOut.Trim());
        Assert.Contains("2 known from the layer record", second.StdErr);
        Assert.Contains("0 B of model layers read", second.StdErr);
        Assert.Equal(annotations, FileAnnotations(Root(output)));
        Assert.Equal(sums["weights.bin"], annotations["/models/weights.bin"]["weights.bin"]);
        Assert.Equal(sums["config.json"], annotations["/models"]["config.json"]);
    }

    [Fact]
    public async Task A_file_that_does_not_match_hf_fetchs_verified_sha256_fails_with_one_line_and_nothing_tagged()
    {
        var (model, baseDir) = SmallModel();
        var size = new FileInfo(Path.Combine(model, "weights.bin")).Length;
        var wrong = new string('a', 64);
        _dir.WriteFile("m/.hf-fetch/snapshot.json", $$"""
            {"repoId":"acme/tiny","repoType":"model","revision":"main","commit":"0123456789abcdef0123456789abcdef01234567","endpoint":"https://huggingface.co",
             "files":[{"path":"weights.bin","size":{{size}},"sha256":"{{wrong}}","gitOid":null},
                      {"path":"config.json","size":18,"sha256":null,"gitOid":"646033483f72539ce94fa14b3d3bce7188ffbec9"},
                      {"path":"sub/tokenizer.json","size":13,"sha256":null,"gitOid":"746033483f72539ce94fa14b3d3bce7188ffbec9"}]}
            """);
        var output = _dir.Combine("out");
        var r = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:v1", "--layer-threshold", "1M", "--allow-incomplete");
        Assert.True(r.ExitCode == 1, r.ToString());
        var line = Assert.Single(r.StdErr.Split('\n'), l => l.StartsWith("oci-pack: error: ", StringComparison.Ordinal));
        Assert.Contains("weights.bin", line);
        Assert.Contains(wrong, line);
        Assert.Contains(await Sha256Sum(Path.Combine(model, "weights.bin")), line);
        Assert.False(File.Exists(Path.Combine(output, "index.json")) && File.ReadAllText(Path.Combine(output, "index.json")).Contains("\"v1\""), "a tag was committed");
    }

    [Fact]
    public async Task Without_an_hf_fetch_record_every_file_is_hashed()
    {
        var weights = TempDir.RandomBytes(2 << 20, 33);
        _dir.WriteFile("plain/w.bin", weights);
        var baseDir = _dir.Combine("base");
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer());
        var output = _dir.Combine("out");
        var r = await ToolRunner.RunAsync("oci-pack", "--model", _dir.Combine("plain"), "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:v1", "--layer-threshold", "1M");
        Assert.True(r.ExitCode == 0, r.ToString());
        var layer = Root(output).GetProperty("layers").EnumerateArray().Last();
        Assert.Equal("/models/w.bin", Annotations(layer)["org.opencontainers.image.title"]);
        Assert.Equal(Hex(weights), Annotations(layer)["io.modelcar.file.sha256"]);
    }
}
