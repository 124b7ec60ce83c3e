using System.Text.Json;
using ModelCar.Oci;

namespace ModelCar.Signing;

/// <summary>
/// The SLSA provenance of a ModelCar, taken from the image itself: oci-pack writes each model
/// file's sha256 (hashed inline during its one read, or hf-fetch's verified one) on the layer
/// descriptors (<c>io.modelcar.file.sha256</c> beside the layer title, <c>io.modelcar.files.sha256</c> for
/// several files), the base image on the manifest (<c>org.opencontainers.image.base.name/digest</c>),
/// and the Hub repo and commit (<c>org.opencontainers.image.source/revision</c>). So attesting reads
/// no model byte and needs no second hash.
/// </summary>
public static class ModelCarProvenance
{
    public const string FileSha256 = "io.modelcar.file.sha256";
    public const string FilesSha256 = "io.modelcar.files.sha256";
    public const string BaseName = "org.opencontainers.image.base.name";
    public const string BaseDigest = "org.opencontainers.image.base.digest";
    private const string HubPrefix = "https://huggingface.co/";

    /// <summary>The model files (URI, sha256 hex) the manifests record; <paramref name="modelsPath"/> (e.g. /models) is cut from single-file layer titles when given.</summary>
    public static IReadOnlyList<ResourceDigest> ModelFiles(IReadOnlyList<ImageManifest> manifests, string? modelsPath)
    {
        var first = manifests.FirstOrDefault();
        if (first is null)
        {
            return [];
        }
        var source = first.Annotations?.GetValueOrDefault(Annotations.Source);
        var revision = first.Annotations?.GetValueOrDefault(Annotations.Revision);
        string Uri(string path) => source is not null && source.StartsWith(HubPrefix, StringComparison.Ordinal) && revision is { Length: > 0 }
            ? $"hf://{source[HubPrefix.Length..]}@{revision}/{path}"
            : path;
        var prefix = modelsPath is null ? null : modelsPath.Trim('/') + "/";
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var layer in first.Layers) // the model layers are the same in every platform
        {
            if (layer.Annotations?.GetValueOrDefault(FileSha256) is { } sha && layer.Annotations.GetValueOrDefault(Annotations.Title) is { } title)
            {
                var path = title.TrimStart('/');
                if (prefix is not null && path.StartsWith(prefix, StringComparison.Ordinal))
                {
                    path = path[prefix.Length..];
                }
                files[path] = sha;
            }
            else if (layer.Annotations?.GetValueOrDefault(FilesSha256) is { } json)
            {
                using var doc = JsonDocument.Parse(json);
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    files[p.Name] = p.Value.GetString() ?? "";
                }
            }
        }
        return files.Select(f => new ResourceDigest(Uri(f.Key), f.Value, f.Key)).ToList();
    }

    /// <summary>The base image of each platform (name, digest), as the manifests record them.</summary>
    public static IReadOnlyList<(string Uri, Digest Digest)> BaseImages(IReadOnlyList<ImageManifest> manifests) =>
        manifests.Select(m => (Name: m.Annotations?.GetValueOrDefault(BaseName), Digest: m.Annotations?.GetValueOrDefault(BaseDigest)))
            .Where(b => b.Name is not null && Digest.TryParse(b.Digest, out _))
            .Select(b => (b.Name!, Digest.Parse(b.Digest!)))
            .Distinct()
            .ToList();

    /// <summary>The statement for <paramref name="root"/> and its platform manifests.</summary>
    public static byte[] Statement(string identity, Digest root, IReadOnlyList<(Digest Digest, ImageManifest Manifest)> platforms, string? modelsPath,
        IReadOnlyDictionary<string, object> externalParameters, string builderId, string? invocationId, string? version)
    {
        var manifests = platforms.Select(p => p.Manifest).ToList();
        var subjects = new List<(string, Digest)> { (identity, root) };
        subjects.AddRange(platforms.Where(p => !p.Digest.Matches(root)).Select(p => (identity, p.Digest)));
        var parameters = new Dictionary<string, object>(externalParameters);
        if (manifests.FirstOrDefault()?.Annotations is { } a)
        {
            if (a.GetValueOrDefault(Annotations.Source) is { } source)
            {
                parameters.TryAdd("source", source);
            }
            if (a.GetValueOrDefault(Annotations.Revision) is { } revision)
            {
                parameters.TryAdd("revision", revision);
            }
        }
        return InToto.Provenance(new ProvenanceFacts
        {
            Subjects = subjects,
            ModelFiles = ModelFiles(manifests, modelsPath),
            BaseImages = BaseImages(manifests),
            ExternalParameters = parameters,
            BuilderId = builderId,
            InvocationId = invocationId,
            BuilderVersion = version,
        });
    }
}
