using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.IO;
using ModelCar.HuggingFace.Cli;
using ModelCar.Oci;
using ModelCar.Packing;
using ModelCar.Registry.Cli;
using ModelCar.Signing;
using ModelCar.Signing.Cli;
using static ModelCar.OciPack.OciPackOptions;
using H = ModelCar.Common.Cli.Hints;

namespace ModelCar.OciPack;

/// <summary>
/// Turn a model directory into a KServe ModelCar OCI image: layouts, oci-archives and registries, from one read of the model.
/// The command parses its options (<see cref="OciPackOptions"/>) into a <see cref="PackRequest"/>, runs <see cref="PackJob"/>,
/// signs in its hook, writes the results, and maps the library's failures to its flags.
/// </summary>
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

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Turn a model directory into a KServe ModelCar OCI image and write it to layouts, oci-archives and registries (any mix, one read of the model).");
        var o = new OciPackOptions();
        foreach (var option in o.All)
        {
            root.Options.Add(option);
        }
        root.SetToolAction(Name, [RegistryOptions.Hints, HubOptions.HintsFor("the @REVISION of --model hf://ORG/NAME@REVISION"), Hints], async (ctx, ct) =>
        {
            var log = ctx.Logger;
            var (uid, gid) = ParseOwner(ctx.Required(o.Owner));
            var settings = new PackSettings
            {
                ModelsPath = ParseModelsPath(ctx.Required(o.ModelsPath)),
                Uid = uid,
                Gid = gid,
                User = ctx.Required(o.User),
                LayerThreshold = ctx.Get(o.LayerThreshold) ?? PackJob.DefaultLayerThreshold,
                Created = Packer.CreatedFrom(Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH")),
                Labels = ParsePairs(ctx.Get(o.Label) ?? [], "--label"),
                ClearEntrypoint = ctx.Get(o.ClearEntrypoint),
                ModelPack = ParseFormats(ctx.Required(o.Format)),
            };
            var platforms = ctx.Get(o.Platform) is { } p ? Parsed("--platform", () => PlatformRequest.Parse(p)) : PlatformRequest.Unspecified;
            var destinations = ParseOutputs(ctx.Get(o.Output) ?? []);
            var baseLocation = ParseLocation(ctx.Required(o.Base), "--base");
            // named credential files are read now (a missing one is an error even with no registry involved)
            var credentials = o.Registry.CredentialsFrom(ctx);
            var registryHosts = destinations.OfType<RegistryLocation>().Select(r => r.Reference.Registry).ToList();
            RegistryOptions.WarnUnusedLogins(credentials, registryHosts.Append((baseLocation as RegistryLocation)?.Reference.Registry).OfType<string>().ToList(), "--output or --base", log);
            var httpSettings = o.Registry.HttpSettingsFrom(ctx);
            // the signing key is read (and decrypted) before the model is read or anything uploaded
            using var signingKey = o.Signing.LoadKey(ctx);
            var modelSignatureFile = ctx.Get(o.ModelSignature) is { Length: > 0 } msf ? msf : null;
            if (modelSignatureFile is not null && signingKey is null)
            {
                throw new UsageException("--model-signature needs --sign-key (the key the model signature is signed with)");
            }
            if (signingKey is not null && registryHosts.Count == 0 && modelSignatureFile is null)
            {
                throw new UsageException("--sign-key signs what goes to a registry: add a docker:// --output (or sign later with registry-push --sign-key)");
            }

            var modelText = ctx.Required(o.Model);
            var filter = PathFilter.Create(ctx.Get(o.Include) ?? [], ctx.Get(o.Exclude) ?? []);
            var model = Parsed("--model", () => PackModel.Parse(modelText));
            Func<string, string?> env = Environment.GetEnvironmentVariable;
            HubAccess? hub = null;
            if (model.Hub is not null)
            {
                if (HubOptions.IsOffline(env))
                {
                    throw new ToolException($"--model {modelText}: HF_HUB_OFFLINE is set, but hf:// reads the model from the Hub; use hf-fetch --offline and --model DIR");
                }
                var token = o.Hub.TokenFrom(ctx, env);
                hub = new HubAccess(o.Hub.EndpointFrom(ctx, env), token, o.Hub.RepoTypeFrom(ctx));
            }
            if (baseLocation is ScratchLocation && platforms.IsAll)
            {
                throw new UsageException("--platform all needs a --base with an image index to take the platforms from; name them for scratch (e.g. --platform linux/amd64,linux/arm64)");
            }
            var maxLayers = ctx.Get(o.MaxLayers) ?? PackJob.DefaultMaxLayers;
            if (maxLayers > PackJob.OverlayDepthCap)
            {
                log.LogWarning("--max-layers {Max} allows images of more than {Cap} layers, which podman 4.3 and Docker's overlay2 refuse to start (max depth exceeded)", maxLayers, PackJob.OverlayDepthCap);
            }

            // the signer: the model signature file, then .sig/.att and bundle referrers in each registry, after the commit
            var signer = signingKey is null ? null : new OciPackSigner(signingKey, modelSignatureFile, o.Signing.AttestEnabled(ctx), settings.ModelsPath,
                platformsPacked => new Dictionary<string, object>
                {
                    ["model"] = modelText,
                    ["base"] = ctx.Required(o.Base),
                    ["modelsPath"] = settings.ModelsPath,
                    ["platforms"] = platformsPacked.Select(pl => pl.ToString()!).ToArray(),
                    ["include"] = ctx.Get(o.Include) ?? [],
                    ["exclude"] = ctx.Get(o.Exclude) ?? [],
                }, log);
            var request = new PackRequest
            {
                Model = model,
                Hub = hub,
                Filter = filter,
                Base = baseLocation,
                Outputs = destinations,
                Platforms = platforms,
                Settings = settings with { Annotations = ParsePairs(ctx.Get(o.Annotation) ?? [], "--annotation") },
                AllowIncomplete = ctx.Get(o.AllowIncomplete),
                AllowNoShell = ctx.Get(o.AllowNoShell),
                MaxLayers = maxLayers,
                MaxBlobSize = ctx.Get(o.Registry.MaxBlobSize),
                StateDirectory = ctx.Get(o.StateDir),
                DryRun = ctx.Get(o.DryRun),
                Credentials = credentials,
                Http = httpSettings,
                Upload = o.Registry.UploadOptionsFrom(ctx, httpSettings),
                Jobs = ctx.Get(o.Registry.Jobs),
                // a HOME that EnsureHome made up is no home: nothing may be created there
                Environment = name => env(name) is var v && !(name == "HOME" && v == ProcessEnvironment.NoHome) ? v : null,
                NoLayerRecord = (where, error) => log.LogWarning("no layer record for --model hf:// ({Path}: {Error}): a re-run reads every layer from the Hub again; give --state-dir DIR or a writable HF_HOME to keep it", where, error),
                LockLayout = async (path, what, c) => await CommonOptions.AcquireLockAsync(ctx, o.LockTimeout, path, what, c).ConfigureAwait(false),
                AfterCommit = signer is null ? null : signer.SignAsync,
            };

            PackJobResult result;
            try
            {
                result = await PackJob.RunAsync(request, log, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (Explain(e) is { } explained)
            {
                throw explained;
            }
            if (result.Plan is { } plan)
            {
                // --dry-run: the plan on stdout, then exit 0, or 1 with its first problem
                ctx.Out.Write(plan.Render());
                return plan.Problems.Count == 0 ? ExitCodes.Ok : throw new ToolException($"dry run: the real run would stop: {plan.Problems[0]}"
                    + (plan.Problems[0].Contains("maximum blob size", StringComparison.Ordinal) ? " (--max-blob-size)" : ""));
            }
            var image = result.Image!;
            foreach (var reference in result.OutputReferences)
            {
                ctx.WriteResult(reference);
            }
            ctx.Results.Write(Result.ImageDigest, image.Manifest.Digest.ToString());
            ctx.Results.Write(Result.ImageUrl, result.ImageUrl!);
            ctx.Results.Write(Result.ImageSize, image.ImageSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
            ctx.Results.Write(Result.ImagePlatforms, string.Join(",", image.Platforms));
            if (result.HfCommit is { } commit)
            {
                ctx.Results.Write(Result.HfCommit, commit);
            }
            SigningResults.Write(ctx, signer?.Signed ?? [], signer?.ModelFiles);
            return ExitCodes.Ok;
        });
        return root;
    }

    /// <summary>The library failures whose one line names an option in the middle (the others get <see cref="Hints"/>).</summary>
    private static ToolException? Explain(Exception e) => e switch
    {
        BaseOverLayerBudgetException b => new ToolException($"base image {b.BaseImage} has {b.BaseLayers} layers, but --max-layers {b.MaxLayers} leaves room for at most {b.MaxLayers - 1} beside the model: use a base with fewer layers (or raise --max-layers)", b),
        BlobOverLimitException { Blob: { } blob } x => Thrown(() => RegistryOptions.CheckBlobSizes([blob], x.Limit)),
        BlobOverLimitException x => new ToolException($"layer {x.LayerTitle} would be {SizeParser.Format(x.Size)} ({x.Size} bytes), over --max-blob-size {SizeParser.Format(x.Limit)} ({x.Limit} bytes): "
            + "nothing was read or uploaded; leave duplicate weights out (--exclude) or push to a registry without that limit", x),
        PackingException { Reason: PackingReason.BaseWithoutShell } x => new ToolException($"{x.Message}: use a base with a shell (busybox, ubi-micro), or --allow-no-shell for images only mounted as volumes", x),
        LayerRecordDirectoryException r => new ToolException($"--state-dir '{r.Directory}': cannot write the layer record there: {r.Why}", r),
        _ => null,
    };

    private static ToolException? Thrown(Action check)
    {
        try
        {
            check();
            return null;
        }
        catch (ToolException e)
        {
            return e;
        }
    }

    /// <summary>Which option to change for a packing failure (the Packing library names none).</summary>
    public static string? Hints(Exception e) => H.Join(
        H.For(e, PackingReason.NoFileMatchesFilter, "check --include/--exclude"),
        H.For(e, PackingReason.PlatformMismatch, "check --platform"),
        H.For(e, PackingReason.ManifestTooLarge, "raise --layer-threshold to make fewer layers"),
        H.For(e, PackingReason.LayerBudget, "raise --max-layers or --max-blob-size, or use a base with fewer layers"),
        H.For(e, PackingReason.IncompleteDownload, "finish it with hf-fetch, or pack it anyway with --allow-incomplete"),
        H.For(e, PackingReason.NoPlatformWithShell, "use a base with a shell, or --allow-no-shell for images only mounted as volumes"),
        H.For(e, PackingReason.BaseEntrypoint, "use --clear-entrypoint or another base"));
}
