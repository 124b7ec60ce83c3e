using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Oci;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;

/// <summary>
/// The base image: its layers (kept byte for byte, compressed or not) and its config, selected for
/// one platform, plus the checks KServe needs (a shell; no ENTRYPOINT that would eat KServe's args).
/// </summary>
public sealed class BaseImage
{
    private BaseImage(IImageSource? source, string description, IReadOnlyList<Descriptor> layers, ImageConfig config)
    {
        Source = source;
        Description = description;
        Layers = layers;
        Config = config;
    }

    /// <summary>Null for scratch.</summary>
    public IImageSource? Source { get; }

    public string Description { get; }

    public IReadOnlyList<Descriptor> Layers { get; }

    public ImageConfig Config { get; }

    public static BaseImage Scratch(PlatformSpec platform) => new(null, "scratch", [], new ImageConfig
    {
        Architecture = platform.Architecture,
        Os = platform.Os,
        Variant = platform.Variant,
        Config = new ContainerConfig(),
        RootFs = new RootFs(),
        History = [],
    });

    /// <summary>Resolves the reference (and, for an index, the platform) and reads manifest and config.</summary>
    public static BaseImage Load(IImageSource source, string? reference, PlatformSpec? platform, ILogger logger)
    {
        var root = source.ResolveRoot(reference);
        var rootJson = source.ReadSmallBlob(root);
        var mediaType = root.MediaType ?? OciJson.DetectMediaType(rootJson);
        Descriptor manifestDescriptor = root;
        byte[] manifestJson = rootJson;
        if (MediaTypes.IsIndex(mediaType))
        {
            var index = OciJson.Deserialize(rootJson, OciJson.Index, $"{source.Description}: index");
            var wanted = platform ?? PlatformSpec.Default;
            var match = index.Manifests.FirstOrDefault(m => m.Platform is { } p && wanted.Matches(p))
                ?? throw new ToolException($"base image {source.Description} has no manifest for platform {wanted} (it has: {string.Join(", ", index.Manifests.Select(m => m.Platform?.ToString() ?? "unknown"))})");
            manifestDescriptor = match;
            manifestJson = source.ReadSmallBlob(match);
            logger.LogInformation("base {Base}: selected {Platform} manifest {Digest}", source.Description, match.Platform, match.Digest);
        }
        else if (!MediaTypes.IsManifest(mediaType))
        {
            throw new ToolException($"base image {source.Description}: {mediaType} is neither an image manifest nor an index");
        }
        var manifest = OciJson.Deserialize(manifestJson, OciJson.Manifest, $"{source.Description}: manifest {manifestDescriptor.Digest}");
        var config = OciJson.Deserialize(source.ReadSmallBlob(manifest.Config), OciJson.Config, $"{source.Description}: config {manifest.Config.Digest}");
        if (platform is not null && !platform.Matches(new Platform { Os = config.Os, Architecture = config.Architecture, Variant = config.Variant }))
        {
            throw new ToolException($"base image {source.Description} is {config.Os}/{config.Architecture}{(config.Variant is null ? string.Empty : "/" + config.Variant)}, not --platform {platform}");
        }
        if (config.RootFs.DiffIds.Count != manifest.Layers.Count)
        {
            throw new ToolException($"base image {source.Description}: config has {config.RootFs.DiffIds.Count} diff_ids for {manifest.Layers.Count} layers");
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
        return new BaseImage(source, source.Description, layers, config);
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
                throw new ToolException($"base image {Description}: layer {layer.Digest} is not a readable {layer.MediaType}: {unreadable.Message}", unreadable);
            }
        }
        if (scanner.Exists("bin/sh") || scanner.Exists("usr/bin/sh"))
        {
            return true;
        }
        return complete ? false : null;
    }

    private ToolException Corrupt(Descriptor layer, DigestMismatchException e) =>
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

/// <summary>os/architecture[/variant], as --platform takes it.</summary>
public sealed record PlatformSpec(string Os, string Architecture, string? Variant)
{
    public static PlatformSpec Default => new("linux", "amd64", null);

    public static PlatformSpec Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length is < 2 or > 3 || parts.Any(p => p.Length == 0))
        {
            throw new UsageException($"--platform '{text}' is not OS/ARCH[/VARIANT] (e.g. linux/amd64)");
        }
        return new PlatformSpec(parts[0], parts[1], parts.Length == 3 ? parts[2] : null);
    }

    public bool Matches(Platform p) =>
        p.Os == Os && p.Architecture == Architecture && (Variant is null || p.Variant == Variant);

    public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";
}
