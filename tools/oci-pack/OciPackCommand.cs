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
using ModelCar.Registry.Cli;
using ModelCar.Signing;
using ModelCar.Signing.Cli;
using ModelCar.Common.Http;
using ModelCar.HuggingFace;
using ModelCar.HuggingFace.Cli;

namespace ModelCar.OciPack;

/// <summary>Turn a model directory into a KServe ModelCar OCI image: layouts, oci-archives and registries, from one read of the model.</summary>
public static class OciPackCommand
{
    /// <summary>The Tekton results this tool writes with --results-dir (the Tasks' contract test checks them).</summary>
    public static class Result
    {
        public const string ImageDigest = "IMAGE_DIGEST";
        public const string ImageSize = "IMAGE_SIZE";

        /// <summary>The first docker:// output as HOST/REPO@sha256:…; without one, the first --output pinned to the digest: oci:DIR@sha256:… or oci-archive:FILE@sha256:….</summary>
        public const string ImageUrl = "IMAGE_URL";

        /// <summary>The platforms of the image, comma-separated (linux/amd64,linux/arm64), in the index's order.</summary>
        public const string ImagePlatforms = "IMAGE_PLATFORMS";

        /// <summary>With --model hf://: the commit the revision resolved to (every file was read at it).</summary>
        public const string HfCommit = "HF_COMMIT";
    }

    public static IReadOnlyList<string> ResultNames { get; } = [Result.ImageDigest, Result.ImageUrl, Result.ImageSize, Result.ImagePlatforms, Result.HfCommit, .. SigningResults.Names];

    public const string Name = "oci-pack";
    public const long DefaultLayerThreshold = 16L << 20;

    /// <summary>
    /// Layers of the whole image (base + model) by default: one under the 128 lower layers that overlay stores of
    /// podman ≤ 4.3 (containers/storage &lt; 1.44), CRI-O &lt; 1.25.2 and Docker's overlay2 mount.
    /// </summary>
    public const int DefaultMaxLayers = 127;

    /// <summary>The smallest overlay depth cap in use (Docker overlay2, podman 4.3): images with more layers do not start there.</summary>
    public const int OverlayDepthCap = 128;

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Turn a model directory into a KServe ModelCar OCI image and write it to layouts, oci-archives and registries (any mix, one read of the model).");
        var model = new Option<string>("--model")
        {
            Description = "The model: a directory (e.g. what hf-fetch wrote), or hf://ORG/NAME[@REVISION] to stream the files from the Hub straight into the outputs (no copy on disk).",
            HelpName = "DIR|hf://ORG/NAME[@REV]",
            Required = true,
        };
        // --repo-type, --endpoint, --token-file: hf-fetch's definitions (for --model hf://)
        var hub = new HubOptions();
        var output = new Option<string[]>("--output")
        {
            Description = "Where the image goes: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST[:PORT]/REPO[:TAG] (repeatable, any mix: all from one read of the model).",
            HelpName = "DEST",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var stateDir = new Option<string?>("--state-dir")
        {
            Description = $"Where the layer digests of this model are remembered for the next run (default: MODEL/{LayerDigestRecord.DirectoryName}/, never packed; use this for a read-only model directory).",
            HelpName = "DIR",
        };
        var baseImage = new Option<string>("--base")
        {
            Description = "Base image with a shell: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF] or scratch (needs --allow-no-shell).",
            HelpName = "IMAGE",
            Required = true,
        };
        var modelsPath = new Option<string>("--models-path") { Description = "Where the model goes in the image (default /models).", DefaultValueFactory = _ => "/models", HelpName = "PATH" };
        var include = new Option<string[]>("--include") { Description = "Only files matching GLOB (huggingface_hub fnmatch; repeatable).", HelpName = "GLOB", DefaultValueFactory = _ => [] };
        var exclude = new Option<string[]>("--exclude") { Description = "Leave out files matching GLOB (repeatable; .cache/, .hf-fetch/ and .oci-pack/ always are).", HelpName = "GLOB", DefaultValueFactory = _ => [] };
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
        var maxLayers = new Option<int?>("--max-layers")
        {
            Description = $"At most N layers in the image, base included (default {DefaultMaxLayers}: Docker's overlay2 and podman 4.3 run at most {OverlayDepthCap}); files over --layer-threshold share layers when there would be more, the largest stay alone.",
            HelpName = "N",
            Validators = { r => { if (r.GetValueOrDefault<int?>() is < 2) { r.AddError("--max-layers must be 2 or more"); } } },
        };
        var format = new Option<string>("--format")
        {
            Description = "modelcar (default), or modelcar,modelpack: also a CNCF ModelPack manifest in the image index, over the same layer blobs (a one-platform image becomes an index).",
            HelpName = "FORMATS",
            DefaultValueFactory = _ => "modelcar",
        };
        var allowIncomplete = new Option<bool>("--allow-incomplete") { Description = "Pack a model dir whose hf-fetch download has not finished (only a warning)." };
        var lockTimeout = CommonOptions.LockTimeout();
        var dryRun = new Option<bool>("--dry-run")
        {
            Description = "Print the plan (files → layers, platforms, what each output already has, bytes to send, limits) and stop: nothing is read from the model, written or uploaded. Exit 0 if the real run would start, 1 with the first problem.",
        };
        var modelSignature = new Option<string?>("--model-signature")
        {
            Description = "Also write the model's OpenSSF model-signing v1.0 signature (the Sigstore bundle model.sig that `model_signing verify key` checks against the model directory) to FILE, signed with --sign-key from the sha256 taken during the one read, and push it as a bundle referrer of the image to every docker:// output. Mode 0644.",
            HelpName = "FILE",
        };
        // credentials, TLS, --jobs (layers in parallel), chunking, retries, --max-blob-size: registry-push's definitions
        var registry = new RegistryOptions(defaultJobs: Math.Clamp(Environment.ProcessorCount, 1, 4), defaultRetries: 5);
        // --sign-key, --sign-key-password-file, --attest: registry-push's definitions
        var signing = new SigningOptions();
        foreach (var o in new Option[] { model, output, baseImage, modelsPath, include, exclude, owner, user, label, annotation, threshold, maxLayers, format, platform, allowNoShell, clearEntrypoint, allowIncomplete, stateDir, lockTimeout, dryRun, modelSignature }.Concat(hub.All).Concat(registry.All).Concat(signing.All))
        {
            root.Options.Add(o);
        }

        root.SetToolAction(Name, [RegistryOptions.Hints, HubOptions.HintsFor("the @REVISION of --model hf://ORG/NAME@REVISION"), Hints], async (ctx, ct) =>
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
                ModelPack = ParseFormats(ctx.Required(format)),
            };
            var platforms = ctx.Get(platform) is { } p ? Parsed("--platform", () => PlatformRequest.Parse(p)) : PlatformRequest.Unspecified;
            var destinations = ParseOutputs(ctx.Get(output) ?? []);
            var baseLocation = ParseLocation(ctx.Required(baseImage), "--base");
            // named credential files are read now (a missing one is an error even with no registry involved)
            var credentials = registry.CredentialsFrom(ctx);
            var registryOutputs = destinations.OfType<RegistryLocation>().Select(r => r.Reference).ToList();
            RegistryOptions.WarnUnusedLogins(credentials, registryOutputs.Select(r => r.Registry).Append((baseLocation as RegistryLocation)?.Reference.Registry).OfType<string>().ToList(), "--output or --base", log);
            var httpSettings = registry.HttpSettingsFrom(ctx);
            // the signing key is read (and decrypted) before the model is read or anything uploaded
            using var signingKey = signing.LoadKey(ctx);
            var modelSignatureFile = ctx.Get(modelSignature) is { Length: > 0 } msf ? msf : null;
            if (modelSignatureFile is not null && signingKey is null)
            {
                throw new UsageException("--model-signature needs --sign-key (the key the model signature is signed with)");
            }
            if (signingKey is not null && registryOutputs.Count == 0 && modelSignatureFile is null)
            {
                throw new UsageException("--sign-key signs what goes to a registry: add a docker:// --output (or sign later with registry-push --sign-key)");
            }

            var modelText = ctx.Required(model);
            var filter = PathFilter.Create(ctx.Get(include) ?? [], ctx.Get(exclude) ?? []);
            var annotations = new Dictionary<string, string>();
            string? modelDir = null;
            ModelTree tree;
            HubModelSource? hubSource = null;
            using var hubHttp = HubModelReference.IsHubReference(modelText) ? HttpClientFactory.Create(httpSettings) : null;
            if (hubHttp is not null)
            {
                Func<string, string?> env = Environment.GetEnvironmentVariable;
                var reference = Parsed("--model", () => HubModelReference.Parse(modelText));
                if (HubOptions.IsOffline(env))
                {
                    throw new ToolException($"--model {modelText}: HF_HUB_OFFLINE is set, but hf:// reads the model from the Hub; use hf-fetch --offline and --model DIR");
                }
                var token = hub.TokenFrom(ctx, env);
                var hubClient = new HubClient(hubHttp, hub.EndpointFrom(ctx, env), token, httpSettings, log);
                hubSource = await HubModelSource.OpenAsync(hubClient, reference, hub.RepoTypeFrom(ctx), filter, log, ct);
                tree = hubSource.Tree;
                foreach (var (k, v) in hubSource.Annotations())
                {
                    annotations[k] = v;
                }
                log.LogInformation("model from {Repo} at {Commit} (the Hub, streamed: {Files} files, {Size})", reference.RepoId, hubSource.Commit, tree.Entries.Count, SizeParser.Format(tree.TotalBytes));
            }
            else
            {
                modelDir = Path.GetFullPath(modelText);
                tree = ModelTree.Scan(modelDir, filter);
            }
            var snapshot = modelDir is null ? null : HfSnapshot.TryRead(modelDir);
            if (modelDir is not null && HfSnapshot.IncompleteReason(modelDir, snapshot, filter) is { } incomplete)
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
            // each file's sha256 for the layer annotations: hf-fetch's verified one where the file still has the identity it had
            // then (not hashed again), else taken inline during the one read (and checked against hf-fetch's, if any)
            settings = settings with
            {
                Annotations = annotations,
                VerifiedFileSha256 = snapshot?.VerifiedSha256(tree) ?? new Dictionary<string, string>(),
                TrustedFileSha256 = snapshot?.TrustedSha256(tree) ?? new Dictionary<string, string>(),
                ModelName = snapshot?.RepoId ?? hubSource?.Reference.RepoId,
                // ModelConfigJson: the Packer keeps config.json as its layer streams (DIR or hf://: the same bytes, no second read)
            };

            using var source = OpenSource(baseLocation, ctx, credentials, httpSettings);
            var bases = source is null
                ? ScratchBases(platforms)
                : BaseImage.LoadAll(source, ReferenceOf(baseLocation), platforms, log, baseLocation is RegistryLocation baseRegistry ? baseRegistry.Reference.ToString() : null);
            bases = CheckBases(bases, platforms.IsAll, ctx.Get(allowNoShell), settings.ClearEntrypoint, log, ct);
            settings = settings with
            {
                MaxModelLayers = ModelLayerBudget(ctx.Get(maxLayers), bases, log),
                MaxLayerBytes = ctx.Get(registry.MaxBlobSize),
            };

            var plans = Packer.Plan(tree, settings);
            if (ctx.Get(dryRun))
            {
                var baseRepository = (baseLocation as RegistryLocation)?.Reference is { } baseRef ? (baseRef.Registry, baseRef.Repository) : ((string, string)?)null;
                return await DryRunAsync(ctx, tree, modelDir is null ? $"{modelText} (the Hub's listing)" : modelDir, bases, plans,
                    DryRunRecord(modelDir, ctx.Get(stateDir), hubSource, log), destinations, registry, credentials, httpSettings,
                    ctx.Get(maxLayers) ?? DefaultMaxLayers, baseRepository, ct);
            }
            CheckSizes(ctx, registry, bases, plans);
            var bigFiles = tree.Entries.Count(e => e.Kind == ModelEntryKind.File && e.Size >= settings.LayerThreshold);
            var grouped = plans.Count(p => p.Entries.Count(e => e.Kind == Oci.Tar.LayerEntryKind.File) > 1 && p.Entries.Any(e => e.Kind == Oci.Tar.LayerEntryKind.File && e.Size >= settings.LayerThreshold));
            if (grouped > 0)
            {
                log.LogInformation("{Files} files of at least {Threshold} in {Layers} model layers ({Grouped} of them grouped, the largest files alone): the image keeps to {Max} layers (--max-layers)",
                    bigFiles, SizeParser.Format(settings.LayerThreshold), plans.Count, grouped, bases.Max(b => b.Layers.Count) + settings.MaxModelLayers);
            }
            foreach (var big in Packer.OverQuayDefaultLimit(plans))
            {
                log.LogWarning("layer {Title} will be {Size} ({Bytes} bytes), over quay's default MAXIMUM_LAYER_SIZE 20G ({Limit} bytes): quay will refuse it; "
                    + "leave duplicate weights out (--exclude) or push to a registry without that limit",
                    big.Title, SizeParser.Format(big.TarSize), big.TarSize, Packer.QuayDefaultMaxLayerBytes);
            }
            var record = OpenRecord(modelDir, ctx.Get(stateDir), hubSource, log);
            if (hubSource is null)
            {
                Packer.CheckReadable(tree, settings, record);
            }

            // one writer per layout at a time; what temp files earlier, killed runs left are removed
            var locks = new List<IDisposable>();
            try
            {
                foreach (var l in destinations.OfType<OciLayoutLocation>())
                {
                    locks.Add(await CommonOptions.AcquireLockAsync(ctx, lockTimeout, OciLayout.WriterLockPath(l.Path), $"OCI layout {Path.GetFullPath(l.Path)}", ct));
                }
                foreach (var destination in destinations)
                {
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
                }

                using var http = registryOutputs.Count > 0 ? HttpClientFactory.Create(httpSettings) : null;
                RegistryTarget? registryTarget = null;
                var targets = new List<IImageTarget>();
                var signTargets = new List<(RegistryClient Client, string Repository)>();
                if (registryOutputs.Count > 0)
                {
                    var clients = registryOutputs.Select(r => (r, new RegistryClient(r.Registry, http!, httpSettings, credentials, log) { AuthRepository = r.Repository })).ToList();
                    signTargets.AddRange(clients.Select(c => (c.Item2, c.r.Repository)));
                    var baseRepo = (baseLocation as RegistryLocation)?.Reference;
                    registryTarget = new RegistryTarget(clients, registry.UploadOptionsFrom(ctx, httpSettings), ctx.Get(registry.Jobs), source, log,
                        baseRepo is null ? null : (baseRepo.Registry, baseRepo.Repository));
                    targets.Add(registryTarget); // registries commit first: the likeliest to fail
                }
                foreach (var destination in destinations)
                {
                    targets.Add(destination switch
                    {
                        OciLayoutLocation l => new LayoutTarget(OciLayout.OpenOrCreate(l.Path), l.Reference),
                        OciArchiveLocation a => new ArchiveTarget(new OciArchiveWriter(a.Path, created), a.Path, a.Reference),
                        RegistryLocation => null!,
                        _ => throw new UsageException($"--output {destination}: unsupported"),
                    });
                }
                targets.RemoveAll(t => t is null);
                await using var outputs = new ImageOutputs(targets, record, log);
                var result = await Packer.PackAsync(tree, bases, outputs, settings, ctx.Get(registry.Jobs), log, ct, hubSource).ConfigureAwait(false);
                await outputs.CommitAsync(result.Manifest, ct).ConfigureAwait(false);
                log.LogInformation("wrote {Outputs}: {Kind} {Digest} ({Platforms}), {Layers} model layers ({FromRecord} known from the layer record), {Read} of model layers read, image {Size}",
                    outputs.Description, result.Manifest.MediaType == MediaTypes.ImageIndex ? "index" : "manifest", result.Manifest.Digest, string.Join(", ", result.Platforms), result.ModelLayers, outputs.LayersFromRecord, SizeParser.Format(outputs.LayerBytesRead), SizeParser.Format(result.ImageSize));
                if (hubSource is not null)
                {
                    log.LogInformation("{Received} received from the Hub for {Files} file(s)", SizeParser.Format(hubSource.Received), hubSource.ReceivedPerFile.Count);
                }
                IReadOnlyList<SignedImage> signed = [];
                Digest? modelFiles = null;
                PreparedBundle? modelBundle = null;
                if (modelSignatureFile is not null)
                {
                    // from the sha256 of each file taken during the one read (outputs.FileSha256): no file is opened again
                    var statementBytes = ModelSignature.Statement(ModelSignatureName(modelDir, hubSource, modelText), ModelSignatureFiles(tree, outputs.FileSha256), tree.Entries.Any(e => e.Kind == ModelEntryKind.Symlink));
                    modelBundle = new PreparedBundle(ModelSignature.PredicateType, statementBytes, ModelSignature.Sign(signingKey!, statementBytes));
                    ModelSignature.Write(modelSignatureFile, modelBundle.Bundle);
                    log.LogInformation("wrote the OpenSSF model signature of {Files} file(s) to {Path}", tree.Entries.Count, modelSignatureFile);
                }
                if (signingKey is not null && signTargets.Count > 0)
                {
                    // from the manifests just pushed: the per-file sha256 oci-pack put on the layers during the one read
                    var (builderId, invocationId) = BuilderIdentity.From(Name, Environment.GetEnvironmentVariable);
                    var external = new Dictionary<string, object>
                    {
                        ["model"] = modelText,
                        ["base"] = ctx.Required(baseImage),
                        ["modelsPath"] = settings.ModelsPath,
                        ["platforms"] = result.Platforms.Select(pl => pl.ToString()!).ToArray(),
                        ["include"] = ctx.Get(include) ?? [],
                        ["exclude"] = ctx.Get(exclude) ?? [],
                    };
                    var statement = signing.AttestEnabled(ctx) ? SigningResults.Statement(settings.ModelsPath, external, builderId, invocationId, d => modelFiles = d) : null;
                    signed = await SigningOptions.SignPushedAsync(signingKey, signTargets, result.Manifest.Digest, statement, log, ct, modelBundle is null ? null : [modelBundle]).ConfigureAwait(false);
                }

                var pushed = registryTarget?.Results ?? [];
                foreach (var destination in destinations)
                {
                    ctx.WriteResult(destination is RegistryLocation r
                        ? pushed.First(p => p.Destination == r.Reference).PinnedReference
                        : result.Manifest.Digest.ToString());
                }
                ctx.Results.Write(Result.ImageDigest, result.Manifest.Digest.ToString());
                ctx.Results.Write(Result.ImageUrl, pushed.Count > 0 ? pushed[0].PinnedReference : ImageUrlOf(destinations[0], result.Manifest.Digest));
                ctx.Results.Write(Result.ImageSize, result.ImageSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
                ctx.Results.Write(Result.ImagePlatforms, string.Join(",", result.Platforms));
                if (hubSource is not null)
                {
                    ctx.Results.Write(Result.HfCommit, hubSource.Commit);
                }
                SigningResults.Write(ctx, signed, modelFiles);
            }
            finally
            {
                foreach (var l in locks)
                {
                    l.Dispose();
                }
            }
            return ExitCodes.Ok;
        });
        return root;
    }

    /// <summary>--format: modelcar, or modelcar,modelpack (in any order); true when ModelPack is asked for.</summary>
    public static bool ParseFormats(string text)
    {
        var formats = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        var unknown = formats.FirstOrDefault(f => f is not ("modelcar" or "modelpack"));
        if (unknown is not null || formats.Count == 0)
        {
            throw new UsageException($"--format '{text}': use modelcar or modelcar,modelpack");
        }
        if (!formats.Contains("modelcar"))
        {
            throw new UsageException($"--format '{text}': the ModelPack manifest rides in the ModelCar image's index; use modelcar,modelpack");
        }
        return formats.Contains("modelpack");
    }

    /// <summary>The model's name in its OpenSSF signature (informative only): the directory's name, or NAME of hf://ORG/NAME.</summary>
    private static string ModelSignatureName(string? modelDir, HubModelSource? hub, string modelText) =>
        modelDir is not null ? Path.GetFileName(Path.TrimEndingDirectorySeparator(modelDir))
        : hub is not null ? hub.Reference.RepoId[(hub.Reference.RepoId.LastIndexOf('/') + 1)..]
        : modelText;

    /// <summary>
    /// Each packed file with the sha256 taken inline; a symlink (relative, inside the tree: ModelTree checked it) with
    /// its target's, as model_signing hashes what a link points to when symlinks are allowed.
    /// </summary>
    public static IEnumerable<ModelFileDigest> ModelSignatureFiles(ModelTree tree, IReadOnlyDictionary<string, string> sha256)
    {
        var byPath = tree.Entries.ToDictionary(e => e.RelativePath, StringComparer.Ordinal);
        foreach (var e in tree.Entries)
        {
            var target = e;
            for (int hops = 0; target.Kind == ModelEntryKind.Symlink; hops++)
            {
                var dir = target.RelativePath.Contains('/', StringComparison.Ordinal) ? target.RelativePath[..target.RelativePath.LastIndexOf('/')] : "";
                var resolved = NormalizeRelative(dir.Length == 0 ? target.LinkTarget! : dir + "/" + target.LinkTarget);
                if (hops > 32 || resolved is null || !byPath.TryGetValue(resolved, out var next))
                {
                    throw new ToolException($"--model-signature: symlink {e.RelativePath} does not lead to a packed file ({e.LinkTarget}): model_signing could not hash it the same way");
                }
                target = next;
            }
            yield return new ModelFileDigest(e.RelativePath, sha256.TryGetValue(target.FullPath, out var sha)
                ? sha
                : throw new ToolException($"--model-signature: no sha256 was taken for {target.RelativePath}"));
        }
    }

    private static string? NormalizeRelative(string path)
    {
        var parts = new List<string>();
        foreach (var p in path.Split('/'))
        {
            if (p is "" or ".")
            {
                continue;
            }
            if (p == "..")
            {
                if (parts.Count == 0)
                {
                    return null;
                }
                parts.RemoveAt(parts.Count - 1);
                continue;
            }
            parts.Add(p);
        }
        return string.Join('/', parts);
    }

    /// <summary>
    /// The model layers the budget leaves after the largest base (--max-layers, default <see cref="DefaultMaxLayers"/>): a base that
    /// leaves none is an error naming both numbers; an explicit budget over the overlay cap is only warned about.
    /// </summary>
    private static int ModelLayerBudget(int? maxLayers, IReadOnlyList<BaseImage> bases, ILogger log)
    {
        int max = maxLayers ?? DefaultMaxLayers;
        if (max > OverlayDepthCap)
        {
            log.LogWarning("--max-layers {Max} allows images of more than {Cap} layers, which podman 4.3 and Docker's overlay2 refuse to start (max depth exceeded)", max, OverlayDepthCap);
        }
        var biggest = bases.MaxBy(b => b.Layers.Count)!;
        if (biggest.Layers.Count > max - 1)
        {
            var what = bases.Count > 1 ? $"{biggest.Description} ({biggest.Platform})" : biggest.Description;
            throw new ToolException($"base image {what} has {biggest.Layers.Count} layers, but --max-layers {max} leaves room for at most {max - 1} beside the model: use a base with fewer layers (or raise --max-layers)");
        }
        return max - biggest.Layers.Count;
    }

    /// <summary>--dry-run: the plan on stdout (PackPlan), then exit 0, or 1 with its first problem; no record, layout, archive or upload session is made.</summary>
    private static async Task<int> DryRunAsync(ToolContext ctx, ModelTree tree, string source, IReadOnlyList<BaseImage> bases, IReadOnlyList<LayerPlan> plans,
        LayerDigestRecord? record, IReadOnlyList<ImageLocation> destinations, RegistryOptions registry, ICredentialProvider credentials, HttpSettings httpSettings,
        int maxLayers, (string Host, string Repository)? baseRepository, CancellationToken ct)
    {
        using var http = destinations.Any(d => d is RegistryLocation) ? HttpClientFactory.Create(httpSettings) : null;
        var outputs = new List<PlanOutput>();
        foreach (var d in destinations)
        {
            if (d is RegistryLocation r)
            {
                // the registry must answer, as the real run's first upload needs it to (a GET of /v2/, no write)
                var client = new RegistryClient(r.Reference.Registry, http!, httpSettings, credentials, ctx.Logger) { AuthRepository = r.Reference.Repository };
                await client.PingAsync(ct).ConfigureAwait(false);
                outputs.Add(PlanOutput.Registry(d.ToString()!, new RegistryRepository(client, r.Reference.Repository)));
            }
            else
            {
                outputs.Add(d switch
                {
                    OciLayoutLocation l => PlanOutput.Layout(d.ToString()!, l.Path),
                    OciArchiveLocation a => PlanOutput.Archive(d.ToString()!, a.Path),
                    _ => throw new UsageException($"--output {d}: unsupported"),
                });
            }
        }
        var plan = await PackPlan.CreateAsync(tree, source, bases, plans, record, outputs, ctx.Get(registry.MaxBlobSize), ct, maxLayers: maxLayers, baseRepository: baseRepository).ConfigureAwait(false);
        ctx.Out.Write(plan.Render());
        if (plan.Problems.Count == 0)
        {
            return ExitCodes.Ok;
        }
        var problem = plan.Problems[0];
        throw new ToolException($"dry run: the real run would stop: {problem}"
            + (problem.Contains("maximum blob size", StringComparison.Ordinal) ? " (--max-blob-size)" : ""));
    }

    /// <summary>The layer record a real run would use, read only (never created: a dry run writes nothing).</summary>
    private static LayerDigestRecord? DryRunRecord(string? modelDir, string? stateDir, HubModelSource? hub, ILogger log)
    {
        var path = modelDir is null && stateDir is null
            ? LayerDigestRecord.DefaultHubPath(HubPaths.TypeName(hub!.RepoType), hub.Reference.RepoId, Environment.GetEnvironmentVariable)
            : LayerDigestRecord.PathFor(modelDir ?? stateDir!, stateDir);
        return path is not null && File.Exists(path) ? LayerDigestRecord.Open(path, log) : null;
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

    private static IImageSource? OpenSource(ImageLocation location, ToolContext ctx, ICredentialProvider credentials, HttpSettings settings) => location switch
    {
        ScratchLocation => null,
        OciLayoutLocation l => OciLayout.Open(l.Path),
        OciArchiveLocation a => Oci.Archive.OciArchiveReader.Open(a.Path),
        RegistryLocation r => RegistryImageSource.Create(r.Reference, settings, credentials, ctx.Logger),
        _ => throw new UsageException($"unsupported --base {location}"),
    };

    private static string? ReferenceOf(ImageLocation location) => location switch
    {
        OciLayoutLocation l => l.Reference,
        OciArchiveLocation a => a.Reference,
        _ => null,
    };

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

    private static List<ImageLocation> ParseOutputs(IReadOnlyList<string> texts)
    {
        if (texts.Count == 0)
        {
            throw new UsageException("at least one --output is required");
        }
        var outputs = new List<ImageLocation>();
        foreach (var text in texts)
        {
            var location = ParseLocation(text, "--output");
            if (location is not (OciLayoutLocation or OciArchiveLocation or RegistryLocation))
            {
                throw new UsageException($"--output '{text}': use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST[:PORT]/REPO[:TAG]");
            }
            if (location is RegistryLocation { Reference.Digest: not null })
            {
                throw new UsageException($"--output '{text}': a registry output takes a tag, not a digest (the digest is known only after packing)");
            }
            var key = PathOf(location);
            if (outputs.Any(o => PathOf(o) == key))
            {
                throw new UsageException($"--output '{text}' names the same place as another --output");
            }
            outputs.Add(location);
        }
        return outputs;

        static string PathOf(ImageLocation l) => l switch
        {
            OciLayoutLocation o => "oci:" + Path.GetFullPath(o.Path),
            OciArchiveLocation a => "oci-archive:" + Path.GetFullPath(a.Path),
            RegistryLocation r => "docker://" + r.Reference,
            _ => l.ToString()!,
        };
    }

    /// <summary>The record of layer digests: --state-dir must be writable (else exit 1); the model dir's .oci-pack/ is best effort (a warning at save).</summary>
    private static LayerDigestRecord? OpenRecord(string? modelDir, string? stateDir, HubModelSource? hub, ILogger log)
    {
        if (modelDir is null && stateDir is null)
        {
            // hf:// without --state-dir: under the Hugging Face home (HF_HOME, …) when it can be written there
            // (a HOME that EnsureHome made up is no home: nothing may be created there)
            var path = LayerDigestRecord.DefaultHubPath(HubPaths.TypeName(hub!.RepoType), hub.Reference.RepoId,
                name => Environment.GetEnvironmentVariable(name) is var v && !(name == "HOME" && v == ProcessEnvironment.NoHome) ? v : null);
            var error = path is null ? "HF_HOME, XDG_CACHE_HOME and HOME are unset" : CannotWrite(Path.GetDirectoryName(path)!);
            if (error is not null)
            {
                log.LogWarning("no layer record for --model hf:// ({Path}: {Error}): a re-run reads every layer from the Hub again; give --state-dir DIR or a writable HF_HOME to keep it",
                    path is null ? "no Hugging Face home" : Path.GetDirectoryName(path), error);
                return null;
            }
            log.LogInformation("layer record {Path} (under the Hugging Face home; --state-dir puts it elsewhere)", path);
            return LayerDigestRecord.Open(path!, log);
        }
        if (stateDir is not null && CannotWrite(stateDir) is { } why)
        {
            throw new ToolException($"--state-dir '{stateDir}': cannot write the layer record there: {why}");
        }
        return LayerDigestRecord.Open(LayerDigestRecord.PathFor(modelDir ?? stateDir!, stateDir), log);
    }

    /// <summary>Null when a file can be created in <paramref name="dir"/> (made if missing), else why not.</summary>
    private static string? CannotWrite(string dir)
    {
        try
        {
            Files.EnsureDirectory(dir);
            var probe = Path.Combine(dir, $".probe-{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }

    /// <summary>--max-blob-size, before anything is read or sent: the base layers and the planned model layers (sizes known up front).</summary>
    private static void CheckSizes(ToolContext ctx, RegistryOptions registry, IReadOnlyList<BaseImage> bases, IReadOnlyList<LayerPlan> plans)
    {
        if (ctx.Get(registry.MaxBlobSize) is not { } max)
        {
            return;
        }
        RegistryOptions.CheckBlobSizes(bases.SelectMany(b => b.Layers).DistinctBy(l => l.Digest).ToList(), max);
        foreach (var plan in plans.Where(p => p.TarSize > max))
        {
            throw new ToolException($"layer {plan.Title} would be {SizeParser.Format(plan.TarSize)} ({plan.TarSize} bytes), over --max-blob-size {SizeParser.Format(max)} ({max} bytes): "
                + "nothing was read or uploaded; leave duplicate weights out (--exclude) or push to a registry without that limit");
        }
    }

    /// <summary>Which option to change for a packing failure (the Packing library names none).</summary>
    public static string? Hints(Exception e) => ModelCar.Common.Cli.Hints.Join(
        ModelCar.Common.Cli.Hints.For(e, PackingReason.NoFileMatchesFilter, "check --include/--exclude"),
        ModelCar.Common.Cli.Hints.For(e, PackingReason.PlatformMismatch, "check --platform"),
        ModelCar.Common.Cli.Hints.For(e, PackingReason.ManifestTooLarge, "raise --layer-threshold to make fewer layers"),
        ModelCar.Common.Cli.Hints.For(e, PackingReason.LayerBudget, "raise --max-layers or --max-blob-size, or use a base with fewer layers"));

    /// <summary>A library parse of an option's value; bad input names the option (exit 2).</summary>
    private static T Parsed<T>(string option, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (PackingInputException e)
        {
            throw new UsageException($"{option} {e.Message}", e);
        }
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
