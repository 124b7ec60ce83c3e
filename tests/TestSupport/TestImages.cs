using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;

namespace ModelCar.TestSupport;

/// <summary>A test image written by <see cref="TestImages"/>: digests and contents for assertions.</summary>
public sealed record TestImage(string LayoutPath, string ManifestDigest, string MediaType, long ManifestSize,
    IReadOnlyList<TestBlob> Layers, TestBlob Config, string? Tag)
{
    public IEnumerable<TestBlob> Blobs => Layers.Append(Config);
}

public sealed record TestBlob(string Digest, byte[] Content, string MediaType);

/// <summary>
/// Writes small OCI image layouts (and oci-archive tars of them) for tests, independently of our
/// ModelCar.Oci code, so the tools are judged against hand-built input: random "layers", a valid
/// config (diff_ids), a manifest, and index.json with a ref.name.
/// </summary>
public static class TestImages
{
    public const string ManifestType = "application/vnd.oci.image.manifest.v1+json";
    public const string IndexType = "application/vnd.oci.image.index.v1+json";
    public const string LayerType = "application/vnd.oci.image.layer.v1.tar";
    public const string ConfigType = "application/vnd.oci.image.config.v1+json";

    public static string Sha256(byte[] data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>Random layers of the given sizes (seeded: deterministic).</summary>
    public static byte[][] RandomLayers(int seed, params int[] sizes) =>
        sizes.Select((s, i) => TempDir.RandomBytes(s, seed * 1000 + i)).ToArray();

    /// <summary>Writes one image (manifest + config + layers) into a layout under <paramref name="tag"/>.</summary>
    public static TestImage WriteLayout(string dir, string? tag, byte[][] layers, string architecture = "amd64")
    {
        var (manifest, image) = WriteImageBlobs(dir, layers, architecture);
        WriteIndex(dir, [(manifest.Digest, ManifestType, manifest.Content.Length, tag, null)]);
        return image with { Tag = tag };
    }

    /// <summary>A multi-arch image: one manifest per architecture under an image index, tagged in index.json.</summary>
    public static (string IndexDigest, byte[] Index, IReadOnlyList<TestImage> Children) WriteIndexLayout(string dir, string tag, params (string Arch, byte[][] Layers)[] images)
    {
        var children = new List<TestImage>();
        var entries = new List<string>();
        foreach (var (arch, layers) in images)
        {
            var (manifest, image) = WriteImageBlobs(dir, layers, arch);
            children.Add(image);
            entries.Add($$$"""{"mediaType":"{{{ManifestType}}}","digest":"{{{manifest.Digest}}}","size":{{{manifest.Content.Length}}},"platform":{"architecture":"{{{arch}}}","os":"linux"}}""");
        }
        var index = Encoding.UTF8.GetBytes($$"""{"schemaVersion":2,"mediaType":"{{IndexType}}","manifests":[{{string.Join(",", entries)}}]}""");
        var digest = WriteBlob(dir, index);
        WriteIndex(dir, [(digest, IndexType, index.Length, tag, null)]);
        return (digest, index, children);
    }

    private static (TestBlob Manifest, TestImage Image) WriteImageBlobs(string dir, byte[][] layers, string architecture)
    {
        Directory.CreateDirectory(Path.Combine(dir, "blobs", "sha256"));
        File.WriteAllText(Path.Combine(dir, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        var layerBlobs = layers.Select(l => new TestBlob(WriteBlob(dir, l), l, LayerType)).ToList();
        var diffIds = string.Join(",", layerBlobs.Select(l => $"\"{l.Digest}\""));
        var config = Encoding.UTF8.GetBytes($$"""{"architecture":"{{architecture}}","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[{{diffIds}}]},"history":[{"created_by":"test"}]}""");
        var configBlob = new TestBlob(WriteBlob(dir, config), config, ConfigType);
        var layerJson = string.Join(",", layerBlobs.Select(l => $$"""{"mediaType":"{{LayerType}}","digest":"{{l.Digest}}","size":{{l.Content.Length}}}"""));
        var manifest = Encoding.UTF8.GetBytes($$"""{"schemaVersion":2,"mediaType":"{{ManifestType}}","config":{"mediaType":"{{ConfigType}}","digest":"{{configBlob.Digest}}","size":{{config.Length}}},"layers":[{{layerJson}}]}""");
        var manifestBlob = new TestBlob(WriteBlob(dir, manifest), manifest, ManifestType);
        return (manifestBlob, new TestImage(dir, manifestBlob.Digest, ManifestType, manifest.Length, layerBlobs, configBlob, null));
    }

    public static string WriteBlob(string dir, byte[] content)
    {
        var digest = Sha256(content);
        var path = Path.Combine(dir, "blobs", "sha256", digest["sha256:".Length..]);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
        return digest;
    }

    public static void WriteIndex(string dir, IEnumerable<(string Digest, string MediaType, long Size, string? Tag, string? Extra)> entries)
    {
        var json = string.Join(",", entries.Select(e =>
            $$$"""{"mediaType":"{{{e.MediaType}}}","digest":"{{{e.Digest}}}","size":{{{e.Size}}}{{{(e.Tag is null ? "" : $$$""","annotations":{"org.opencontainers.image.ref.name":"{{{e.Tag}}}"}""")}}}}"""));
        File.WriteAllText(Path.Combine(dir, "index.json"), $$"""{"schemaVersion":2,"mediaType":"{{IndexType}}","manifests":[{{json}}]}""");
    }

    /// <summary>Tars a layout directory into an oci-archive (entries relative to the layout root).</summary>
    public static string WriteArchive(string layoutDir, string tarPath, TarEntryFormat format = TarEntryFormat.Gnu, string namePrefix = "")
    {
        using var output = File.Create(tarPath);
        using var writer = new TarWriter(output, format, leaveOpen: false);
        foreach (var file in Directory.EnumerateFiles(layoutDir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var name = namePrefix + Path.GetRelativePath(layoutDir, file).Replace('\\', '/');
            writer.WriteEntry(file, name);
        }
        return tarPath;
    }
}
