using ModelCar.Common;
using ModelCar.Oci;

namespace ModelCar.Packing;

/// <summary>A small JSON blob to store (config, manifest, index), in the order it must be written.</summary>
public sealed record AssembledBlob(byte[] Content, string MediaType)
{
    public Descriptor Descriptor => new() { MediaType = MediaType, Digest = Digest.Sha256(Content), Size = Content.Length };
}

/// <summary>
/// The documents of a packed image: <see cref="Blobs"/> children first (config, manifest per
/// platform, then the index), <see cref="Root"/> the one to tag (the manifest for one platform, the
/// index for several), <see cref="Manifests"/> the per-platform manifest descriptors (with platform).
/// </summary>
public sealed record AssembledImage(IReadOnlyList<AssembledBlob> Blobs, Descriptor Root, IReadOnlyList<Descriptor> Manifests, long ImageSize)
{
    public bool IsIndex => Root.MediaType == MediaTypes.ImageIndex;

    public IEnumerable<Platform> Platforms => Manifests.Select(m => m.Platform!);
}

/// <summary>
/// Assembles configs, manifests and (for several platforms) the image index from the model layers
/// (already written, the same blobs for every platform) and each platform's base. Pure: no I/O, so
/// the same inputs give the same bytes and digests (reproducible). One platform gives a plain
/// manifest, byte for byte what oci-pack wrote before multi-platform output existed (plus the base
/// provenance annotations).
/// </summary>
public static class ImageAssembly
{
    /// <summary>OCI's standard annotations for the base image (image-spec annotations.md).</summary>
    public const string BaseName = "org.opencontainers.image.base.name";
    public const string BaseDigest = "org.opencontainers.image.base.digest";

    /// <summary>On a layer holding one model file: the sha256 (hex) of that file as it was in the model directory.</summary>
    public const string FileSha256 = "io.modelcar.file.sha256";

    /// <summary>On a layer holding several model files: a JSON object of their paths (relative to the models path) → sha256 (hex).</summary>
    public const string FilesSha256 = "io.modelcar.files.sha256";

    public static AssembledImage Assemble(IReadOnlyList<BaseImage> bases, IReadOnlyList<LayerPlan> plans, IReadOnlyList<Descriptor> modelLayers, PackSettings settings)
    {
        if (bases.Count == 0)
        {
            throw new ArgumentException("no platforms", nameof(bases));
        }
        var duplicate = bases.GroupBy(b => b.Platform.ToString()).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new PackingException($"platform {duplicate.Key} is selected twice: an image index holds one manifest per platform");
        }
        modelLayers = WithFileDigests(plans, modelLayers, settings);
        var blobs = new List<AssembledBlob>();
        var manifests = new List<Descriptor>();
        var distinct = new Dictionary<Digest, long>();
        foreach (var baseImage in bases)
        {
            var config = new AssembledBlob(OciJson.Serialize(Packer.BuildConfig(baseImage.Config, plans, modelLayers, settings), OciJson.Config), MediaTypes.ImageConfig);
            var manifest = new ImageManifest
            {
                Config = config.Descriptor,
                Layers = [.. baseImage.Layers, .. modelLayers],
                Annotations = Annotations(BaseAnnotations(baseImage.Name, baseImage.ManifestDigest), settings),
            };
            var manifestJson = OciJson.Serialize(manifest, OciJson.Manifest);
            if (manifestJson.Length > OciJson.MaxManifestBytes)
            {
                throw new PackingException($"the manifest would be {manifestJson.Length} bytes (limit {OciJson.MaxManifestBytes}): too many layers", reason: PackingReason.ManifestTooLarge);
            }
            var manifestBlob = new AssembledBlob(manifestJson, MediaTypes.ImageManifest);
            blobs.Add(config);
            blobs.Add(manifestBlob);
            manifests.Add(manifestBlob.Descriptor with { Platform = baseImage.Platform });
            foreach (var d in manifest.Layers.Append(config.Descriptor).Append(manifestBlob.Descriptor))
            {
                distinct[d.Digest] = d.Size;
            }
        }
        var entries = manifests.ToList();
        if (settings.ModelPack)
        {
            // the same layer blobs under another manifest: only its config and manifest are new
            var (modelPackConfig, modelPackManifest, entry) = ModelPackAssembly.Assemble(plans, modelLayers, settings);
            blobs.Add(modelPackConfig);
            blobs.Add(modelPackManifest);
            entries.Add(entry);
            distinct[modelPackConfig.Descriptor.Digest] = modelPackConfig.Content.Length;
            distinct[modelPackManifest.Descriptor.Digest] = modelPackManifest.Content.Length;
        }
        else if (bases.Count == 1)
        {
            return new AssembledImage(blobs, blobs[^1].Descriptor, manifests, distinct.Values.Sum());
        }
        // the index names the base as a whole: its root (an index too, when the platforms came from one)
        var first = bases[0];
        var index = new ImageIndex
        {
            Manifests = entries,
            Annotations = Annotations(BaseAnnotations(first.Name, first.RootDigest), settings),
        };
        var indexBlob = new AssembledBlob(OciJson.Serialize(index, OciJson.Index), MediaTypes.ImageIndex);
        blobs.Add(indexBlob);
        distinct[indexBlob.Descriptor.Digest] = indexBlob.Content.Length;
        return new AssembledImage(blobs, indexBlob.Descriptor, manifests, distinct.Values.Sum());
    }

    /// <summary>Each model layer's descriptor gets the sha256 of its file(s) beside its title (keys sorted as Go writes maps).</summary>
    public static IReadOnlyList<Descriptor> WithFileDigests(IReadOnlyList<LayerPlan> plans, IReadOnlyList<Descriptor> modelLayers, PackSettings settings)
    {
        if (settings.FileSha256.Count == 0)
        {
            return modelLayers;
        }
        var prefix = settings.ModelsPath.Trim('/') + "/";
        var result = new List<Descriptor>(modelLayers.Count);
        for (int i = 0; i < modelLayers.Count; i++)
        {
            var files = plans[i].Entries
                .Where(e => e.Kind == Oci.Tar.LayerEntryKind.File && e.SourcePath is not null && settings.FileSha256.ContainsKey(e.SourcePath))
                .Select(e => (Path: e.TarPath.StartsWith(prefix, StringComparison.Ordinal) ? e.TarPath[prefix.Length..] : e.TarPath, Sha: settings.FileSha256[e.SourcePath!]))
                .OrderBy(f => f.Path, StringComparer.Ordinal)
                .ToList();
            if (files.Count == 0)
            {
                result.Add(modelLayers[i]);
                continue;
            }
            var annotations = new SortedDictionary<string, string>(modelLayers[i].Annotations?.ToDictionary() ?? [], StringComparer.Ordinal);
            bool oneFileLayer = files.Count == 1 && plans[i].Title.EndsWith("/" + files[0].Path, StringComparison.Ordinal);
            if (oneFileLayer)
            {
                annotations[FileSha256] = files[0].Sha;
            }
            else
            {
                using var buffer = new MemoryStream();
                using (var w = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                {
                    w.WriteStartObject();
                    foreach (var (path, sha) in files)
                    {
                        w.WriteString(path, sha);
                    }
                    w.WriteEndObject();
                }
                annotations[FilesSha256] = System.Text.Encoding.UTF8.GetString(buffer.ToArray());
            }
            result.Add(modelLayers[i] with { Annotations = annotations });
        }
        return result;
    }

    private static IEnumerable<KeyValuePair<string, string>> BaseAnnotations(string? name, Digest? digest)
    {
        if (name is not null)
        {
            yield return new(BaseName, name);
        }
        if (digest is { } d)
        {
            yield return new(BaseDigest, d.ToString());
        }
    }

    /// <summary>The base's provenance, then the pack's own annotations (which win on a clash); keys sorted as Go writes maps.</summary>
    private static SortedDictionary<string, string>? Annotations(IEnumerable<KeyValuePair<string, string>> baseAnnotations, PackSettings settings)
    {
        var all = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in baseAnnotations.Concat(settings.Annotations))
        {
            all[k] = v;
        }
        return all.Count == 0 ? null : all;
    }
}
