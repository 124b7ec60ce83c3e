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
        // the record's sha256 for model.safetensors is deliberately not its content's: the annotation
        // must show the record's (proof that it is taken, not recomputed); other.bin has no record
        var recorded = new string('a', 64);
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
        Assert.Contains("hashing 3 model file(s) without an hf-fetch sha256 record", r.StdErr);
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
