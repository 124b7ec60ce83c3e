using System.Text;
using ModelCar.Common.IO;
using ModelCar.Oci.Layout;
using ModelCar.TestSupport;

namespace ModelCar.Oci.Tests;

public class LayoutTests
{
    [Fact]
    public async Task Blobs_and_tags_round_trip_with_skopeo_selection_rules()
    {
        using var tmp = new TempDir();
        var layout = OciLayout.OpenOrCreate(tmp.Combine("layout"));
        var bytes = Encoding.UTF8.GetBytes("layer");
        await using var writer = layout.OpenBlobWriter(bytes.Length, MediaTypes.Layer);
        await writer.WriteAsync(bytes, default);
        await writer.CommitAsync(Digest.Sha256(bytes), default);
        var layer = writer.Result!;
        var config = layout.WriteBlob(Encoding.UTF8.GetBytes("{}"), MediaTypes.ImageConfig);
        var manifest = new ImageManifest { Config = config, Layers = [layer] };
        var m1 = layout.WriteBlob(OciJson.Serialize(manifest, OciJson.Manifest), MediaTypes.ImageManifest);
        layout.AddToIndex(m1, "v1");

        var reopened = OciLayout.Open(layout.Root);
        Assert.Equal(m1.Digest, reopened.ResolveRoot(null).Digest);
        Assert.Equal(m1.Digest, reopened.ResolveRoot("v1").Digest);
        Assert.Throws<ReferenceNotFoundException>(() => reopened.ResolveRoot("v2"));

        // a second tag keeps the first; then no-ref selection is ambiguous
        layout.AddToIndex(m1, "v2");
        Assert.Equal(2, layout.ReadIndex().Manifests.Count);
        var ex = Assert.Throws<ReferenceNotFoundException>(() => layout.ResolveRoot(null));
        Assert.Contains("v1", ex.Message);

        Assert.Equal("layer", Encoding.UTF8.GetString(layout.ReadSmallBlob(layer)));
        Assert.Equal(Files.FileMode644, File.GetUnixFileMode(layout.BlobPath(layer.Digest)));
        Assert.Equal(Files.FileMode644, File.GetUnixFileMode(layout.IndexPath));
        Assert.Empty(Directory.GetFiles(Path.Combine(layout.Root, "blobs", "sha256"), ".tmp-*"));
    }

    [Fact]
    public async Task The_same_blob_written_at_once_by_several_writers_is_committed_once_without_error()
    {
        // e.g. two identical weight files packed in parallel, or two runs into one layout: both temp
        // files are complete when one of them is renamed to the digest first
        using var tmp = new TempDir();
        var content = TempDir.RandomBytes(64 << 10, 3);
        for (int round = 0; round < 40; round++)
        {
            var layout = OciLayout.OpenOrCreate(tmp.Combine($"l{round}"));
            using var start = new Barrier(8);
            var digest = Digest.Sha256(content);
            var writers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                await using var writer = layout.OpenBlobWriter(content.Length, MediaTypes.Layer);
                await writer.WriteAsync(content, default);
                start.SignalAndWait();
                await writer.CommitAsync(digest, default);
                return writer.Result!;
            })).ToArray();
            var written = await Task.WhenAll(writers);
            Assert.Single(written.Select(d => d.Digest).Distinct());
            Assert.Equal(content, File.ReadAllBytes(layout.BlobPath(written[0].Digest)));
            Assert.Empty(Directory.GetFiles(Path.Combine(layout.Root, "blobs", "sha256"), ".tmp-*"));
        }
    }

    [Fact]
    public void Tampered_blob_fails_verification()
    {
        using var tmp = new TempDir();
        var layout = OciLayout.OpenOrCreate(tmp.Combine("l"));
        var d = layout.WriteBlob(Encoding.UTF8.GetBytes("original"), MediaTypes.ImageConfig);
        File.WriteAllText(layout.BlobPath(d.Digest), "tampered");
        var ex = Assert.Throws<DigestMismatchException>(() => layout.ReadSmallBlob(d));
        Assert.Contains(d.Digest.ToString(), ex.Message);
    }

    [Fact]
    public void Missing_layout_and_blob_give_clear_errors()
    {
        using var tmp = new TempDir();
        Assert.Throws<DirectoryNotFoundException>(() => OciLayout.Open(tmp.Combine("nope")));
        Directory.CreateDirectory(tmp.Combine("empty"));
        var ex = Assert.Throws<InvalidDataException>(() => OciLayout.Open(tmp.Combine("empty")));
        Assert.Contains("oci-layout", ex.Message);
        var layout = OciLayout.OpenOrCreate(tmp.Combine("l"));
        var missing = new Descriptor { MediaType = MediaTypes.Layer, Digest = Digest.Sha256([1]), Size = 1 };
        Assert.Throws<BlobNotFoundException>(() => layout.OpenBlob(missing));
    }

    [Fact]
    public void Manifest_json_is_compact_and_keeps_plus_literal()
    {
        var d = new Descriptor { MediaType = MediaTypes.LayerGzip, Digest = Digest.Sha256([]), Size = 0, Annotations = new Dictionary<string, string> { ["k"] = "a+b" } };
        var json = Encoding.UTF8.GetString(OciJson.Serialize(new ImageManifest { Config = d, Layers = [d] }, OciJson.Manifest));
        Assert.StartsWith("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":", json);
        Assert.Contains("tar+gzip", json);
        Assert.Contains("a+b", json);
        Assert.DoesNotContain("\\u002B", json);
        Assert.DoesNotContain("null", json);
    }
}
