using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using ModelCar.Oci;
using ModelCar.Oci.Tar;
using ModelCar.Packing;

namespace ModelCar.Packing.Tests;

/// <summary>
/// Issue 20 behaviour 2, the pure part: the ModelPack manifest beside the ModelCar one in the index, over the same
/// layer blobs, with ModelPack's media types and annotations, a config from config.json and the Hub metadata that
/// the vendored ModelPack schema (Schemas/, model-spec d78bf32) accepts, and an entry no runtime takes for a platform.
/// </summary>
public sealed class ModelPackTests
{
    private static readonly PackSettings Settings = new()
    {
        ModelsPath = "/models",
        Uid = 0,
        Gid = 0,
        User = "1001",
        LayerThreshold = 1,
        Created = DateTimeOffset.UnixEpoch,
        Annotations = new Dictionary<string, string> { [Annotations.Revision] = "abc123", [Annotations.Source] = "https://huggingface.co/org/m" },
        FileSha256 = new Dictionary<string, string> { ["/src/w.safetensors"] = new string('b', 64), ["/src/config.json"] = new string('c', 64), ["/src/README.md"] = new string('d', 64) },
        ModelPack = true,
        ModelName = "org/m",
        ModelConfigJson = """{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16","quantization_config":{"quant_method":"fp8"}}"""u8.ToArray(),
    };

    private static readonly LayerPlan[] Plans =
    [
        new("/models", [new LayerEntry("models", LayerEntryKind.Directory), new LayerEntry("models/README.md", LayerEntryKind.File, "/src/README.md", 3), new LayerEntry("models/config.json", LayerEntryKind.File, "/src/config.json", 2)], 5, 4096),
        new("/models/w.safetensors", [new LayerEntry("models", LayerEntryKind.Directory), new LayerEntry("models/w.safetensors", LayerEntryKind.File, "/src/w.safetensors", 5)], 5, 3072),
    ];

    private static readonly Descriptor[] Layers =
    [
        new() { MediaType = MediaTypes.Layer, Digest = Digest.Sha256("small"u8), Size = 4096, Annotations = new Dictionary<string, string> { [Annotations.Title] = "/models" } },
        new() { MediaType = MediaTypes.Layer, Digest = Digest.Sha256("layer"u8), Size = 3072, Annotations = new Dictionary<string, string> { [Annotations.Title] = "/models/w.safetensors" } },
    ];

    private static BaseImage Scratch(string arch) => BaseImage.Scratch(new PlatformSpec("linux", arch, null));

    private static readonly JsonSchema Schema = JsonSchema.FromFile(Path.Combine(AppContext.BaseDirectory, "Schemas", "modelpack-config-schema.json"));

    private static JsonElement Element(JsonNode? node) => JsonDocument.Parse(node!.ToJsonString()).RootElement.Clone();

    [Fact]
    public void One_platform_with_modelpack_is_an_index_of_the_modelcar_manifest_and_a_modelpack_manifest_over_the_same_blobs()
    {
        var plain = ImageAssembly.Assemble([Scratch("amd64")], Plans, Layers, Settings with { ModelPack = false });
        var image = ImageAssembly.Assemble([Scratch("amd64")], Plans, Layers, Settings);
        Assert.True(image.IsIndex);
        var index = OciJson.Deserialize(image.Blobs[^1].Content, OciJson.Index, "index");
        Assert.Equal(2, index.Manifests.Count);
        // the ModelCar manifest is byte for byte the one-platform image's, now with its platform in the index
        Assert.Equal(plain.Root with { Platform = new Platform { Architecture = "amd64", Os = "linux" } }, index.Manifests[0]);
        Assert.Equal(["linux/amd64"], image.Platforms.Select(p => p.ToString()));
        var entry = index.Manifests[1];
        Assert.Equal("unknown", entry.Platform!.Os);
        Assert.Equal("unknown", entry.Platform.Architecture);
        Assert.Equal(ModelPackTypes.ArtifactType, entry.ArtifactType);
        Assert.Equal(MediaTypes.ImageManifest, entry.MediaType);

        var manifestBlob = image.Blobs.Single(b => b.Descriptor.Digest == entry.Digest);
        var manifest = OciJson.Deserialize(manifestBlob.Content, OciJson.Manifest, "modelpack manifest");
        Assert.Equal(ModelPackTypes.ArtifactType, manifest.ArtifactType);
        Assert.Equal(ModelPackTypes.Config, manifest.Config.MediaType);
        // the same blobs (digest and size): nothing new to store or send but the config and the manifest
        Assert.Equal(Layers.Select(l => (l.Digest, l.Size)), manifest.Layers.Select(l => (l.Digest, l.Size)));
        Assert.Equal([ModelPackTypes.WeightConfig, ModelPackTypes.Weight], manifest.Layers.Select(l => l.MediaType));
        Assert.Equal("models/w.safetensors", manifest.Layers[1].Annotations![ModelPackTypes.FilePath]);
        Assert.Equal("w.safetensors", manifest.Layers[1].Annotations![Annotations.Title]);
        Assert.Equal(new string('b', 64), manifest.Layers[1].Annotations![ImageAssembly.FileSha256]);
        Assert.False(manifest.Layers[0].Annotations!.ContainsKey(ModelPackTypes.FilePath)); // several files: no one path
        Assert.Contains("\"config.json\":\"" + new string('c', 64), manifest.Layers[0].Annotations![ImageAssembly.FilesSha256]);
        Assert.Equal(4096 + 3072 + image.Blobs.Sum(b => b.Content.Length), image.ImageSize);

        var configBlob = image.Blobs.Single(b => b.Descriptor.Digest == manifest.Config.Digest);
        var config = JsonNode.Parse(configBlob.Content)!;
        var result = Schema.Evaluate(Element(config), new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, JsonSerializer.Serialize(result));
        Assert.Equal("layers", (string?)config["modelfs"]!["type"]);
        Assert.Equal(Layers.Select(l => l.Digest.ToString()), config["modelfs"]!["diffIds"]!.AsArray().Select(d => (string?)d));
        Assert.All(config["modelfs"]!["diffIds"]!.AsArray(), d => Assert.StartsWith("sha256:", (string?)d));
        Assert.Equal("org/m", (string?)config["descriptor"]!["name"]);
        Assert.Equal("llama", (string?)config["descriptor"]!["family"]);
        Assert.Equal("abc123", (string?)config["descriptor"]!["revision"]);
        Assert.Equal("https://huggingface.co/org/m", (string?)config["descriptor"]!["sourceURL"]);
        Assert.Equal("LlamaForCausalLM", (string?)config["config"]!["architecture"]);
        Assert.Equal("safetensors", (string?)config["config"]!["format"]);
        Assert.Equal("bfloat16", (string?)config["config"]!["precision"]);
        Assert.Equal("fp8", (string?)config["config"]!["quantization"]);
        Assert.Null(config["config"]!["paramSize"]); // unknown: left out, not invented
    }

    [Fact]
    public void Without_config_json_or_hub_metadata_the_config_has_only_what_is_known_and_is_still_valid_and_reproducible()
    {
        var bare = Settings with { ModelConfigJson = null, ModelName = null, Annotations = new Dictionary<string, string>() };
        var a = ImageAssembly.Assemble([Scratch("amd64"), Scratch("arm64")], Plans, Layers, bare);
        var b = ImageAssembly.Assemble([Scratch("amd64"), Scratch("arm64")], Plans, Layers, bare);
        Assert.Equal(a.Root, b.Root);
        var index = OciJson.Deserialize(a.Blobs[^1].Content, OciJson.Index, "index");
        Assert.Equal(["linux/amd64", "linux/arm64", "unknown/unknown"], index.Manifests.Select(m => m.Platform!.ToString()));
        var manifest = OciJson.Deserialize(a.Blobs.Single(x => x.Descriptor.Digest == index.Manifests[2].Digest).Content, OciJson.Manifest, "m");
        var config = JsonNode.Parse(a.Blobs.Single(x => x.Descriptor.Digest == manifest.Config.Digest).Content)!;
        Assert.True(Schema.Evaluate(Element(config)).IsValid);
        var expected = "{\"descriptor\":{},\"modelfs\":{\"type\":\"layers\",\"diffIds\":[\"sha256:" + Layers[0].Digest.Encoded + "\",\"sha256:" + Layers[1].Digest.Encoded
            + "\"]},\"config\":{\"format\":\"safetensors\"}}";
        Assert.Equal(expected, config.ToJsonString());
        // the schema judge can fail: a property the schema does not know is refused
        Assert.False(Schema.Evaluate(Element(JsonNode.Parse("""{"descriptor":{},"modelfs":{"type":"layers","diffIds":["x"]},"config":{"size":1}}"""))).IsValid);
    }

    [Theory]
    [InlineData("model.safetensors", ModelPackTypes.Weight)]
    [InlineData("consolidated.pth", ModelPackTypes.Weight)]
    [InlineData("tokenizer.json", ModelPackTypes.WeightConfig)]
    [InlineData("README.md", ModelPackTypes.Doc)]
    [InlineData("LICENSE", ModelPackTypes.Doc)]
    [InlineData("modeling_x.py", ModelPackTypes.Code)]
    public void Layer_media_types_follow_the_files(string path, string mediaType) => Assert.Equal(mediaType, ModelPackAssembly.MediaTypeOf([path]));
}
