using ModelCar.Oci;
using ModelCar.Oci.Tar;
using ModelCar.Packing;

namespace ModelCar.Packing.Tests;

/// <summary>ImageAssembly, the pure part: configs, manifests and the index from bases and already written model layers.</summary>
public sealed class ImageAssemblyTests
{
    private static readonly PackSettings Settings = new()
    {
        ModelsPath = "/models",
        Uid = 0,
        Gid = 0,
        User = "1001",
        LayerThreshold = 1,
        Created = DateTimeOffset.UnixEpoch,
        Annotations = new Dictionary<string, string> { [Annotations.Revision] = "abc" },
        FileSha256 = new Dictionary<string, string> { ["/src/w.bin"] = new string('b', 64) },
    };

    private static readonly LayerPlan[] Plans = [new("/models/w.bin", [new LayerEntry("models", LayerEntryKind.Directory), new LayerEntry("models/w.bin", LayerEntryKind.File, "/src/w.bin", 5)], 5, 3072)];

    private static readonly Descriptor[] Layers =
    [
        new() { MediaType = MediaTypes.Layer, Digest = Digest.Sha256("layer"u8), Size = 3072, Annotations = new Dictionary<string, string> { [Annotations.Title] = "/models/w.bin" } },
    ];

    private static BaseImage Scratch(string arch) => BaseImage.Scratch(new PlatformSpec("linux", arch, null));

    [Fact]
    public void Several_platforms_give_an_index_over_one_manifest_each_sharing_the_model_layers()
    {
        var image = ImageAssembly.Assemble([Scratch("amd64"), Scratch("arm64")], Plans, Layers, Settings);
        Assert.True(image.IsIndex);
        Assert.Equal(5, image.Blobs.Count); // config + manifest per platform, then the index
        Assert.Equal(image.Root.Digest, image.Blobs[^1].Descriptor.Digest);
        Assert.Equal(["linux/amd64", "linux/arm64"], image.Platforms.Select(p => p.ToString()));
        var index = OciJson.Deserialize(image.Blobs[^1].Content, OciJson.Index, "index");
        Assert.Equal(image.Manifests, index.Manifests);
        Assert.Equal("abc", index.Annotations![Annotations.Revision]);
        var manifests = image.Blobs.Where(b => b.MediaType == MediaTypes.ImageManifest).Select(b => OciJson.Deserialize(b.Content, OciJson.Manifest, "m")).ToList();
        static string Text(Descriptor l) => $"{l.Digest} {l.Size} {string.Join(";", l.Annotations!.Select(kv => kv.Key + "=" + kv.Value))}";
        Assert.Equal(manifests[0].Layers.Select(Text), manifests[1].Layers.Select(Text));
        Assert.Equal(new string('b', 64), manifests[0].Layers[0].Annotations![ImageAssembly.FileSha256]);
        var configs = image.Blobs.Where(b => b.MediaType == MediaTypes.ImageConfig).Select(b => OciJson.Deserialize(b.Content, OciJson.Config, "c")).ToList();
        Assert.Equal(["amd64", "arm64"], configs.Select(c => c.Architecture));
        // each distinct blob counted once: the shared model layer, two configs, two manifests, the index
        Assert.Equal(3072 + image.Blobs.Sum(b => b.Content.Length), image.ImageSize);
        // pure: the same inputs give the same bytes
        Assert.Equal(image.Root, ImageAssembly.Assemble([Scratch("amd64"), Scratch("arm64")], Plans, Layers, Settings).Root);
    }

    [Fact]
    public void One_platform_is_a_plain_manifest_equal_to_the_index_child()
    {
        var one = ImageAssembly.Assemble([Scratch("arm64")], Plans, Layers, Settings);
        var two = ImageAssembly.Assemble([Scratch("amd64"), Scratch("arm64")], Plans, Layers, Settings);
        Assert.False(one.IsIndex);
        Assert.Equal(MediaTypes.ImageManifest, one.Root.MediaType);
        Assert.Equal(two.Manifests[1].Digest, one.Root.Digest);
    }

    [Fact]
    public void A_platform_twice_is_refused()
    {
        var e = Assert.ThrowsAny<Exception>(() => ImageAssembly.Assemble([Scratch("arm64"), Scratch("arm64")], Plans, Layers, Settings));
        Assert.Contains("linux/arm64 is selected twice", e.Message);
    }
}
