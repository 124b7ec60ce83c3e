using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Oci;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;

/// <summary>
/// The base image: its layers (kept byte for byte, compressed or not) and its config, selected for
/// one platform, plus the checks KServe needs (a shell; no ENTRYPOINT that would eat KServe's args).
/// <see cref="LoadAll"/> selects several platforms of a multi-arch base (one BaseImage each).
/// </summary>
public sealed class BaseImage
{
    private BaseImage(IImageSource? source, string description, IReadOnlyList<Descriptor> layers, ImageConfig config, Platform platform, Digest? manifestDigest, Digest? rootDigest, string? name)
    {
        Source = source;
        Description = description;
        Layers = layers;
        Config = config;
        Platform = platform;
        ManifestDigest = manifestDigest;
        RootDigest = rootDigest;
        Name = name;
    }

    /// <summary>Null for scratch.</summary>
    public IImageSource? Source { get; }

    public string Description { get; }

    public IReadOnlyList<Descriptor> Layers { get; }

    public ImageConfig Config { get; }

    /// <summary>The platform of this image: the base index's entry for it, else its config's os/architecture/variant.</summary>
    public Platform Platform { get; }

    /// <summary>The digest of the base manifest taken (null for scratch): org.opencontainers.image.base.digest.</summary>
    public Digest? ManifestDigest { get; }

    /// <summary>The digest of what the base reference names: the index a platform was taken from, else the manifest.</summary>
    public Digest? RootDigest { get; }

    /// <summary>The base's public reference (registry bases only): org.opencontainers.image.base.name.</summary>
    public string? Name { get; }

    public static BaseImage Scratch(PlatformSpec platform) => new(null, "scratch", [], new ImageConfig
    {
        Architecture = platform.Architecture,
        Os = platform.Os,
        Variant = platform.Variant,
        Config = new ContainerConfig(),
        RootFs = new RootFs(),
        History = [],
    }, new Platform { Os = platform.Os, Architecture = platform.Architecture, Variant = platform.Variant }, null, null, null);

    /// <summary>Resolves the reference (and, for an index, the platform) and reads manifest and config.</summary>
    public static BaseImage Load(IImageSource source, string? reference, PlatformSpec? platform, ILogger logger, string? name = null) =>
        LoadAll(source, reference, platform is null ? PlatformRequest.Unspecified : PlatformRequest.Of([platform]), logger, name)[0];

    /// <summary>
    /// Resolves the reference and selects the requested platforms: from an index, the first entry
    /// matching each listed platform (in the order listed), or with <see cref="PlatformRequest.All"/>
    /// every entry that names a real platform (attestation entries "unknown/unknown" and nested
    /// indexes are left out), in the index's order; unspecified = linux/amd64. A single-manifest base
    /// is its own one platform: a list must name only that one.
    /// </summary>
    public static IReadOnlyList<BaseImage> LoadAll(IImageSource source, string? reference, PlatformRequest request, ILogger logger, string? name = null)
    {
        var root = source.ResolveRoot(reference);
        var rootJson = source.ReadSmallBlob(root);
        var mediaType = root.MediaType ?? OciJson.DetectMediaType(rootJson);
        if (MediaTypes.IsIndex(mediaType))
        {
            var index = OciJson.Deserialize(rootJson, OciJson.Index, $"{source.Description}: index");
            var entries = new List<Descriptor>();
            if (request.IsAll)
            {
                // the first entry of each platform (an index may list one twice, e.g. with and without os.version)
                entries.AddRange(index.Manifests.Where(m => MediaTypes.IsManifest(m.MediaType) && m.Platform is { } p && p.Os != "unknown" && p.Architecture != "unknown")
                    .DistinctBy(m => m.Platform!.ToString()));
                if (entries.Count == 0)
                {
                    throw new PackingException($"base image {source.Description}: its index names no platform (it has: {string.Join(", ", index.Manifests.Select(m => m.Platform?.ToString() ?? "unknown"))})");
                }
            }
            else
            {
                foreach (var wanted in request.Platforms ?? [PlatformSpec.Default])
                {
                    var match = index.Manifests.FirstOrDefault(m => m.Platform is { } p && wanted.Matches(p))
                        ?? throw new PackingException($"base image {source.Description} has no manifest for platform {wanted} (it has: {string.Join(", ", index.Manifests.Select(m => m.Platform?.ToString() ?? "unknown"))})");
                    if (!entries.Any(e => e.Digest == match.Digest))
                    {
                        entries.Add(match);
                    }
                }
            }
            return entries.Select(match =>
            {
                logger.LogInformation("base {Base}: selected {Platform} manifest {Digest}", source.Description, match.Platform, match.Digest);
                var image = FromManifest(source, match, source.ReadSmallBlob(match), root.Digest, name);
                if (request.Platforms is { } listed && !listed.Any(p => p.Matches(image.Platform)))
                {
                    throw new PackingException($"base image {source.Description}: its {match.Platform} entry {match.Digest} is {image.Platform}, not the platform asked for ({string.Join(",", listed)})", reason: PackingReason.PlatformMismatch);
                }
                return image;
            }).ToList();
        }
        if (!MediaTypes.IsManifest(mediaType))
        {
            throw new PackingException($"base image {source.Description}: {mediaType} is neither an image manifest nor an index");
        }
        var single = FromManifest(source, root, rootJson, root.Digest, name);
        if (request.Platforms is { } platforms)
        {
            if (platforms.Count > 1)
            {
                throw new PackingException($"base image {source.Description} is a single image ({single.Platform}), not an index: it cannot give the {platforms.Count} platforms {string.Join(",", platforms)}");
            }
            if (!platforms[0].Matches(single.Platform))
            {
                throw new PackingException($"base image {source.Description} is {single.Platform}, not the platform asked for ({platforms[0]})", reason: PackingReason.PlatformMismatch);
            }
        }
        return [single];
    }

    private static BaseImage FromManifest(IImageSource source, Descriptor manifestDescriptor, byte[] manifestJson, Digest rootDigest, string? name)
    {
        var manifest = OciJson.Deserialize(manifestJson, OciJson.Manifest, $"{source.Description}: manifest {manifestDescriptor.Digest}");
        var config = OciJson.Deserialize(source.ReadSmallBlob(manifest.Config), OciJson.Config, $"{source.Description}: config {manifest.Config.Digest}");
        if (config.RootFs.DiffIds.Count != manifest.Layers.Count)
        {
            throw new PackingException($"base image {source.Description}: config has {config.RootFs.DiffIds.Count} diff_ids for {manifest.Layers.Count} layers");
        }
        // Docker media types are renamed to their OCI twins (same bytes, same digests) so the result is one OCI manifest.
        var layers = manifest.Layers.Select(l => l with
        {
            MediaType = l.MediaType switch
            {
                MediaTypes.DockerLayer => MediaTypes.Layer,
                MediaTypes.DockerLayerGzip => MediaTypes.LayerGzip,
                _ => l.MediaType,
            },
        }).ToList();
        var fromConfig = new Platform { Os = config.Os, Architecture = config.Architecture, Variant = config.Variant, OsVersion = config.OsVersion };
        // the index entry's platform is what clients match on; a plain manifest has only its config's
        var platform = manifestDescriptor.Platform is { } p && p.Os == config.Os && p.Architecture == config.Architecture ? p : fromConfig;
        return new BaseImage(source, source.Description, layers, config, platform, manifestDescriptor.Digest, rootDigest, name);
    }

    /// <summary>
    /// Looks through the layers' tar headers for sh (at /bin/sh or /usr/bin/sh, through symlinks
    /// such as a merged-/usr /bin → usr/bin). Returns true, false, or null when a layer could not be
    /// read (zstd) and sh was not found in the others.
    /// </summary>
    public bool? HasShell(ILogger logger, CancellationToken ct)
    {
        if (Source is null)
        {
            return false;
        }
        var scanner = new RootFsScanner();
        bool complete = true;
        foreach (var layer in Layers)
        {
            ct.ThrowIfCancellationRequested();
            if (!RootFsScanner.CanScan(layer.MediaType))
            {
                logger.LogWarning("base {Base}: cannot look into layer {Digest} ({MediaType}) for sh", Description, layer.Digest, layer.MediaType);
                complete = false;
                continue;
            }
            using var stream = Source.OpenVerified(layer);
            Exception? unreadable = null;
            try
            {
                scanner.AddLayer(stream, layer.MediaType);
            }
            catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
            {
                unreadable = e;
            }
            catch (DigestMismatchException e)
            {
                throw Corrupt(layer, e);
            }
            // The scan stops at the tar's end-of-archive blocks (and a gzip layer's CRC is never reached): read
            // the rest so the digest is checked before anything is concluded from what the scan did (not) find.
            try
            {
                stream.CopyTo(Stream.Null);
            }
            catch (DigestMismatchException e)
            {
                throw Corrupt(layer, e);
            }
            if (unreadable is not null)
            {
                throw new PackingException($"base image {Description}: layer {layer.Digest} is not a readable {layer.MediaType}: {unreadable.Message}", unreadable);
            }
        }
        if (scanner.Exists("bin/sh") || scanner.Exists("usr/bin/sh"))
        {
            return true;
        }
        return complete ? false : null;
    }

    private PackingException Corrupt(Descriptor layer, DigestMismatchException e) =>
        new($"base image {Description}: layer {layer.Digest} is corrupt (digest check failed): {e.Message}", e);

    /// <summary>An ENTRYPOINT KServe's Args would be appended to; known pass-through init wrappers are fine.</summary>
    public string? EntrypointProblem()
    {
        var entrypoint = Config.Config?.Entrypoint;
        if (entrypoint is null || entrypoint.Count == 0)
        {
            return null;
        }
        var program = Path.GetFileName(entrypoint[0]);
        bool passThrough = program is "tini" or "tini-static" or "dumb-init" or "catatonit"
            || (entrypoint.Count > 1 && entrypoint[^1] == "--");
        return passThrough ? null : $"[{string.Join(", ", entrypoint.Select(e => "\"" + e + "\""))}]";
    }
}

/// <summary>
/// Which platforms of the base to build for: unspecified (linux/amd64 from an index, else the base's
/// own), a list, or all the base index has.
/// </summary>
public sealed record PlatformRequest
{
    private PlatformRequest(IReadOnlyList<PlatformSpec>? platforms, bool all)
    {
        Platforms = platforms;
        IsAll = all;
    }

    /// <summary>Null when unspecified or all.</summary>
    public IReadOnlyList<PlatformSpec>? Platforms { get; }

    public bool IsAll { get; }

    public static PlatformRequest Unspecified { get; } = new(null, false);

    public static PlatformRequest All { get; } = new(null, true);

    public static PlatformRequest Of(IReadOnlyList<PlatformSpec> platforms) =>
        platforms.Count > 0 ? new([.. platforms.Distinct()], false) : throw new ArgumentException("no platforms", nameof(platforms));

    /// <summary>"all", or a comma-separated list of OS/ARCH[/VARIANT] (duplicates dropped, order kept).</summary>
    public static PlatformRequest Parse(string text)
    {
        if (text.Trim() == "all")
        {
            return All;
        }
        var items = text.Split(',', StringSplitOptions.TrimEntries);
        if (items.Any(i => i.Length == 0))
        {
            throw new PackingInputException($"'{text}' has an empty entry: list OS/ARCH[/VARIANT] separated by commas, or 'all'");
        }
        return Of(items.Select(PlatformSpec.Parse).ToList());
    }

    public override string ToString() => IsAll ? "all" : Platforms is null ? "(unspecified)" : string.Join(",", Platforms);
}

/// <summary>os/architecture[/variant], as --platform takes it.</summary>
public sealed record PlatformSpec(string Os, string Architecture, string? Variant)
{
    public static PlatformSpec Default => new("linux", "amd64", null);

    public static PlatformSpec Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length is < 2 or > 3 || parts.Any(p => p.Length == 0))
        {
            throw new PackingInputException($"'{text}' is not OS/ARCH[/VARIANT] (e.g. linux/amd64)");
        }
        return new PlatformSpec(parts[0], parts[1], parts.Length == 3 ? parts[2] : null);
    }

    public bool Matches(Platform p) =>
        p.Os == Os && p.Architecture == Architecture && (Variant is null || p.Variant == Variant);

    public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";
}
