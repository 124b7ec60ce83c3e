using ModelCar.Packing;
using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.IO;
using ModelCar.Oci;
using ModelCar.Oci.Archive;
using ModelCar.Oci.Layout;
using ModelCar.Registry;
using ModelCar.Registry.Auth;

namespace ModelCar.OciPack;

/// <summary>Turn a model directory into a KServe ModelCar OCI image (layout or oci-archive).</summary>
public static class OciPackCommand
{
    /// <summary>The Tekton results this tool writes with --results-dir (the Tasks' contract test checks them).</summary>
    public static class Result
    {
        public const string ImageDigest = "IMAGE_DIGEST";
        public const string ImageSize = "IMAGE_SIZE";

        /// <summary>The --output location pinned to the digest: oci:DIR@sha256:… or oci-archive:FILE@sha256:… (no registry URL exists yet).</summary>
        public const string ImageUrl = "IMAGE_URL";
    }

    public static IReadOnlyList<string> ResultNames { get; } = [Result.ImageDigest, Result.ImageUrl, Result.ImageSize];

    public const string Name = "oci-pack";
    public const long DefaultLayerThreshold = 16L << 20;

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Turn a model directory into a KServe ModelCar OCI image (layout or oci-archive).");
        var model = new Option<DirectoryInfo>("--model") { Description = "The model directory (e.g. what hf-fetch wrote).", HelpName = "DIR", Required = true };
        var output = new Option<string>("--output") { Description = "Where the image goes: oci:DIR[:TAG] or oci-archive:FILE[:TAG].", HelpName = "DEST", Required = true };
        var baseImage = new Option<string>("--base")
        {
            Description = "Base image with a shell: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF] or scratch (needs --allow-no-shell).",
            HelpName = "IMAGE",
            Required = true,
        };
        var modelsPath = new Option<string>("--models-path") { Description = "Where the model goes in the image (default /models).", DefaultValueFactory = _ => "/models", HelpName = "PATH" };
        var include = new Option<string[]>("--include") { Description = "Only files matching GLOB (huggingface_hub fnmatch; repeatable).", HelpName = "GLOB", DefaultValueFactory = _ => [] };
        var exclude = new Option<string[]>("--exclude") { Description = "Leave out files matching GLOB (repeatable; .cache/ and .hf-fetch/ always are).", HelpName = "GLOB", DefaultValueFactory = _ => [] };
        var owner = new Option<string>("--owner") { Description = "UID:GID of the model files in the image (default 0:0).", DefaultValueFactory = _ => "0:0", HelpName = "UID:GID" };
        var user = new Option<string>("--user") { Description = "Config User (default 1001).", DefaultValueFactory = _ => "1001", HelpName = "UID" };
        var label = new Option<string[]>("--label") { Description = "Config label KEY=VALUE (repeatable).", HelpName = "K=V", DefaultValueFactory = _ => [] };
        var annotation = new Option<string[]>("--annotation") { Description = "Manifest annotation KEY=VALUE (repeatable).", HelpName = "K=V", DefaultValueFactory = _ => [] };
        var threshold = CommonOptions.Size("--layer-threshold", "Files of at least SIZE get a layer each; smaller files share one (default 16M).");
        var platform = new Option<string?>("--platform")
        {
            Description = "OS/ARCH[/VARIANT] to pick from a multi-arch base (default linux/amd64); a comma-separated list or 'all' (every platform of the base index with sh) makes an image index, one manifest per platform.",
            HelpName = "PLATFORMS",
        };
        var allowNoShell = new Option<bool>("--allow-no-shell") { Description = "Only warn when the base has no sh (e.g. for KServe's oci+native image volumes)." };
        var clearEntrypoint = new Option<bool>("--clear-entrypoint") { Description = "Drop the base image's ENTRYPOINT (it would receive KServe's sh -c args)." };
        var allowIncomplete = new Option<bool>("--allow-incomplete") { Description = "Pack a model dir whose hf-fetch download has not finished (only a warning)." };
        var lockTimeout = CommonOptions.LockTimeout();
        var authFile = new Option<string[]>("--authfile")
        {
            Description = "Registry credentials for a docker:// base: containers-auth.json / config.json or legacy .dockercfg (repeatable, merged in order; a missing file is an error).",
            HelpName = "FILE",
            AllowMultipleArgumentsPerToken = false,
            DefaultValueFactory = _ => [],
        };
        var tlsVerify = CommonOptions.TlsVerify();
        var caFile = CommonOptions.CaFile();
        var retries = CommonOptions.Retries();
        var jobs = CommonOptions.Jobs(Math.Clamp(Environment.ProcessorCount, 1, 4));
        foreach (var o in new Option[] { model, output, baseImage, modelsPath, include, exclude, owner, user, label, annotation, threshold, platform, allowNoShell, clearEntrypoint, allowIncomplete, authFile, tlsVerify, caFile, retries, jobs, lockTimeout })
        {
            root.Options.Add(o);
        }

        root.SetToolAction(Name, async (ctx, ct) =>
        {
            var log = ctx.Logger;
            var created = Packer.CreatedFrom(Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH"));
            var (uid, gid) = ParseOwner(ctx.Required(owner));
            var userValue = ctx.Required(user);
            var settings = new PackSettings
            {
                ModelsPath = ParseModelsPath(ctx.Required(modelsPath)),
                Uid = uid,
                Gid = gid,
                User = userValue,
                LayerThreshold = ctx.Get(threshold) ?? DefaultLayerThreshold,
                Created = created,
                Labels = ParsePairs(ctx.Get(label) ?? [], "--label"),
                ClearEntrypoint = ctx.Get(clearEntrypoint),
            };
            var platforms = ctx.Get(platform) is { } p ? PlatformRequest.Parse(p) : PlatformRequest.Unspecified;
            var destination = ParseOutput(ctx.Required(output));
            var baseLocation = ParseLocation(ctx.Required(baseImage), "--base");
            // named auth files are read now (a missing one is an error even if the base is not docker://)
            var credentials = new AuthFileLookup(AuthFileLookup.CandidateFiles(ctx.Get(authFile), Environment.GetEnvironmentVariable), ctx.Logger).Validate();

            var modelDir = ctx.Required(model).FullName;
            var filter = PathFilter.Create(ctx.Get(include) ?? [], ctx.Get(exclude) ?? []);
            var tree = ModelTree.Scan(modelDir, filter);
            var annotations = new Dictionary<string, string>();
            var snapshot = HfSnapshot.TryRead(modelDir);
            if (HfSnapshot.IncompleteReason(modelDir, snapshot, filter) is { } incomplete)
            {
                var message = $"model dir is an incomplete hf-fetch download: {incomplete}";
                if (!ctx.Get(allowIncomplete))
                {
                    throw new ToolException($"{message}; finish it with hf-fetch, or pack it anyway with --allow-incomplete");
                }
                log.LogWarning("{Message}; packing it anyway (--allow-incomplete)", message);
            }
            if (snapshot is not null)
            {
                foreach (var (k, v) in snapshot.Annotations())
                {
                    annotations[k] = v;
                }
                log.LogInformation("model from {Repo} at {Commit} (hf-fetch metadata)", snapshot.RepoId, snapshot.Commit);
            }
            foreach (var (k, v) in ParsePairs(ctx.Get(annotation) ?? [], "--annotation"))
            {
                annotations[k] = v;
            }
            settings = settings with { Annotations = annotations, FileSha256 = await FileDigests.CollectAsync(tree, snapshot, ctx.Get(jobs), log, ct).ConfigureAwait(false) };

            using var source = OpenSource(baseLocation, ctx, credentials, tlsVerify, caFile, retries);
            var bases = source is null
                ? ScratchBases(platforms)
                : BaseImage.LoadAll(source, ReferenceOf(baseLocation), platforms, log, baseLocation is RegistryLocation r ? r.Reference.ToString() : null);
            bases = CheckBases(bases, platforms.IsAll, ctx.Get(allowNoShell), settings.ClearEntrypoint, log, ct);

            // one writer per output at a time; what temp files earlier, killed runs left are removed
            using var outputLock = destination is OciLayoutLocation layoutOut
                ? await CommonOptions.AcquireLockAsync(ctx, lockTimeout, OciLayout.WriterLockPath(layoutOut.Path), $"OCI layout {Path.GetFullPath(layoutOut.Path)}", ct)
                : null;
            var (staleFiles, staleBytes) = destination switch
            {
                OciLayoutLocation l => OciLayout.OpenOrCreate(l.Path).RemoveStaleTempFiles(),
                OciArchiveLocation a => OciArchiveWriter.RemoveStaleTempFiles(a.Path),
                _ => (0, 0L),
            };
            if (staleFiles > 0)
            {
                log.LogInformation("removed {Count} stale temp file(s) ({Size}) that killed runs left in {Output}", staleFiles, SizeParser.Format(staleBytes), destination);
            }
            using IImageSink sink = destination switch
            {
                OciLayoutLocation l => new LayoutSink(OciLayout.OpenOrCreate(l.Path)),
                OciArchiveLocation a => new ArchiveSink(new OciArchiveWriter(a.Path, created), a.Path),
                _ => throw new UsageException($"--output must be oci:DIR[:TAG] or oci-archive:FILE[:TAG], not {destination}"),
            };
            var result = await Packer.PackAsync(tree, bases, sink, settings, ctx.Get(jobs), log, ct).ConfigureAwait(false);
            sink.Commit(result.Manifest, TagOf(destination));
            log.LogInformation("wrote {Output}: {Kind} {Digest} ({Platforms}), {Layers} model layers, image {Size}", destination,
                bases.Count > 1 ? "index" : "manifest", result.Manifest.Digest, string.Join(", ", result.Platforms), result.ModelLayers, SizeParser.Format(result.ImageSize));
            ctx.WriteResult(result.Manifest.Digest.ToString());
            ctx.Results.Write(Result.ImageDigest, result.Manifest.Digest.ToString());
            ctx.Results.Write(Result.ImageUrl, ImageUrlOf(destination, result.Manifest.Digest));
            ctx.Results.Write(Result.ImageSize, result.ImageSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return ExitCodes.Ok;
        });
        return root;
    }

    private static IReadOnlyList<BaseImage> ScratchBases(PlatformRequest platforms) => platforms.IsAll
        ? throw new UsageException("--platform all needs a --base with an image index to take the platforms from; name them for scratch (e.g. --platform linux/amd64,linux/arm64)")
        : (platforms.Platforms ?? [PlatformSpec.Default]).Select(BaseImage.Scratch).ToList();

    /// <summary>
    /// Checks each platform's base for sh and a harmless ENTRYPOINT. With --platform all, platforms
    /// without sh are left out (unless --allow-no-shell); a listed platform without sh is an error.
    /// </summary>
    private static IReadOnlyList<BaseImage> CheckBases(IReadOnlyList<BaseImage> bases, bool all, bool allowNoShell, bool clearEntrypoint, ILogger log, CancellationToken ct)
    {
        var kept = new List<BaseImage>();
        foreach (var baseImg in bases)
        {
            var what = bases.Count > 1 || all ? $"{baseImg.Description} ({baseImg.Platform})" : baseImg.Description;
            var hasShell = baseImg.HasShell(log, ct);
            if (hasShell == false)
            {
                var message = $"base image {what} has no /bin/sh, but KServe starts the modelcar with sh -c \"ln -sf ... && sleep infinity\": use a base with a shell (busybox, ubi-micro)";
                if (all && !allowNoShell)
                {
                    log.LogInformation("base image {Base} has no /bin/sh: platform {Platform} left out (--platform all takes the platforms with sh)", what, baseImg.Platform);
                    continue;
                }
                if (!allowNoShell)
                {
                    throw new ToolException(message + ", or --allow-no-shell for images only mounted as volumes");
                }
                log.LogWarning("{Message}", message);
            }
            else if (hasShell is null)
            {
                log.LogWarning("base image {Base}: could not check every layer for sh", what);
            }
            if (!clearEntrypoint && baseImg.EntrypointProblem() is { } entrypoint)
            {
                throw new ToolException($"base image {what} has ENTRYPOINT {entrypoint}: KServe only sets Args (sh -c ...), which it would swallow; use --clear-entrypoint or another base");
            }
            kept.Add(baseImg);
        }
        return kept.Count > 0
            ? kept
            : throw new ToolException($"base image {bases[0].Description}: none of its platforms ({string.Join(", ", bases.Select(b => b.Platform))}) has /bin/sh; use a base with a shell, or --allow-no-shell for images only mounted as volumes");
    }

    private static IImageSource? OpenSource(ImageLocation location, ToolContext ctx, ICredentialProvider credentials, Option<bool> tlsVerify, Option<string[]> caFile, Option<int> retries) => location switch
    {
        ScratchLocation => null,
        OciLayoutLocation l => OciLayout.Open(l.Path),
        OciArchiveLocation a => Oci.Archive.OciArchiveReader.Open(a.Path),
        RegistryLocation r => RegistryImageSource.Create(r.Reference,
            CommonOptions.HttpSettingsFrom(ctx.ParseResult, tlsVerify, caFile, retries),
            credentials,
            ctx.Logger),
        _ => throw new UsageException($"unsupported --base {location}"),
    };

    private static string? ReferenceOf(ImageLocation location) => location switch
    {
        OciLayoutLocation l => l.Reference,
        OciArchiveLocation a => a.Reference,
        _ => null,
    };

    private static string? TagOf(ImageLocation location) => ReferenceOf(location);

    /// <summary>IMAGE_URL for a local output: the transport and path, pinned by digest (the tag is dropped, as registry-push pins HOST/REPO@digest).</summary>
    public static string ImageUrlOf(ImageLocation destination, Digest digest) => destination switch
    {
        OciLayoutLocation l => $"oci:{l.Path}@{digest}",
        OciArchiveLocation a => $"oci-archive:{a.Path}@{digest}",
        _ => destination.ToString(),
    };

    private static ImageLocation ParseLocation(string text, string option)
    {
        try
        {
            return ImageLocation.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"{option}: {e.Message}");
        }
    }

    private static ImageLocation ParseOutput(string text)
    {
        var location = ParseLocation(text, "--output");
        return location is OciLayoutLocation or OciArchiveLocation
            ? location
            : throw new UsageException($"--output '{text}': use oci:DIR[:TAG] or oci-archive:FILE[:TAG] (push with registry-push)");
    }

    public static (int Uid, int Gid) ParseOwner(string text)
    {
        var parts = text.Split(':');
        if (parts.Length == 2 && int.TryParse(parts[0], out int uid) && int.TryParse(parts[1], out int gid) && uid >= 0 && gid >= 0)
        {
            return (uid, gid);
        }
        throw new UsageException($"--owner '{text}' is not UID:GID (numbers, e.g. 0:0)");
    }

    public static string ParseModelsPath(string text)
    {
        var parts = text.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (!text.StartsWith('/') || parts.Length == 0 || parts.Any(p => p is "." or ".."))
        {
            throw new UsageException($"--models-path '{text}' must be an absolute path below / without . or .. (e.g. /models)");
        }
        return "/" + string.Join('/', parts);
    }

    public static Dictionary<string, string> ParsePairs(IEnumerable<string> values, string option)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in values)
        {
            int eq = v.IndexOf('=');
            if (eq <= 0)
            {
                throw new UsageException($"{option} '{v}' is not KEY=VALUE");
            }
            result[v[..eq]] = v[(eq + 1)..];
        }
        return result;
    }
}
