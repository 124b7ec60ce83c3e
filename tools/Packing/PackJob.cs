using Microsoft.Extensions.Logging;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.HuggingFace;
using ModelCar.Oci;
using ModelCar.Oci.Archive;
using ModelCar.Oci.Layout;
using ModelCar.Oci.Tar;
using ModelCar.Registry;

namespace ModelCar.Packing;

/// <summary>
/// One pack, start to end: open the model (a directory or the Hub), check the base image and the layer budget,
/// plan the layers, then either the dry run's plan, or the one read of the model into every output, the commit,
/// and <see cref="PackRequest.AfterCommit"/>. Names no option: failures are <see cref="PackingException"/>s
/// (typed reasons and types such as <see cref="BaseOverLayerBudgetException"/>) the command maps to its flags.
/// </summary>
public static class PackJob
{
    /// <summary>Files of at least this size get a layer each; smaller files share one.</summary>
    public const long DefaultLayerThreshold = 16L << 20;

    /// <summary>
    /// Layers of the whole image (base + model) by default: one under the 128 lower layers that overlay stores of
    /// podman ≤ 4.3 (containers/storage &lt; 1.44), CRI-O &lt; 1.25.2 and Docker's overlay2 mount.
    /// </summary>
    public const int DefaultMaxLayers = 127;

    /// <summary>The smallest overlay depth cap in use (Docker overlay2, podman 4.3): images with more layers do not start there.</summary>
    public const int OverlayDepthCap = 128;

    public static async Task<PackJobResult> RunAsync(PackRequest request, ILogger log, CancellationToken ct)
    {
        var model = request.Model;
        var settings = request.Settings;
        var annotations = new Dictionary<string, string>();
        ModelTree tree;
        HubModelSource? hubSource = null;
        using var hubHttp = model.Hub is not null ? HttpClientFactory.Create(request.Http) : null;
        if (model.Hub is { } reference)
        {
            var hub = request.Hub ?? throw new ArgumentException("a Hub model needs PackRequest.Hub", nameof(request));
            var hubClient = new HubClient(hubHttp!, hub.Endpoint, hub.Token, request.Http, log);
            hubSource = await HubModelSource.OpenAsync(hubClient, reference, hub.RepoType, request.Filter, log, ct).ConfigureAwait(false);
            tree = hubSource.Tree;
            foreach (var (k, v) in hubSource.Annotations())
            {
                annotations[k] = v;
            }
            log.LogInformation("model from {Repo} at {Commit} (the Hub, streamed: {Files} files, {Size})", reference.RepoId, hubSource.Commit, tree.Entries.Count, SizeParser.Format(tree.TotalBytes));
        }
        else
        {
            tree = ModelTree.Scan(model.Directory!, request.Filter);
        }
        var modelDir = model.Directory;
        var snapshot = modelDir is null ? null : HfSnapshot.TryRead(modelDir);
        if (modelDir is not null && HfSnapshot.IncompleteReason(modelDir, snapshot, request.Filter) is { } incomplete)
        {
            var message = $"model dir is an incomplete hf-fetch download: {incomplete}";
            if (!request.AllowIncomplete)
            {
                throw new PackingException(message, reason: PackingReason.IncompleteDownload);
            }
            log.LogWarning("{Message}; packing it anyway (allowed)", message);
        }
        if (snapshot is not null)
        {
            foreach (var (k, v) in snapshot.Annotations())
            {
                annotations[k] = v;
            }
            log.LogInformation("model from {Repo} at {Commit} (hf-fetch metadata)", snapshot.RepoId, snapshot.Commit);
        }
        foreach (var (k, v) in settings.Annotations)
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

        using var source = OpenBase(request, log);
        var bases = source is null
            ? request.Platforms.IsAll
                ? throw new PackingInputException("all platforms of scratch: scratch has no image index to take the platforms from")
                : (request.Platforms.Platforms ?? [PlatformSpec.Default]).Select(BaseImage.Scratch).ToList()
            : BaseImage.LoadAll(source, LocalImage.ReferenceOf(request.Base), request.Platforms, log, request.Base is RegistryLocation baseRegistry ? baseRegistry.Reference.ToString() : null);
        bases = CheckBases(bases, request.Platforms.IsAll, request.AllowNoShell, settings.ClearEntrypoint, log, ct);
        settings = settings with
        {
            MaxModelLayers = ModelLayerBudget(request.MaxLayers, bases),
            MaxLayerBytes = request.MaxBlobSize,
        };
        var plans = Packer.Plan(tree, settings);
        var baseRepository = (request.Base as RegistryLocation)?.Reference is { } baseRef ? (baseRef.Registry, baseRef.Repository) : ((string, string)?)null;
        if (request.DryRun)
        {
            var plan = await DryRunAsync(request, tree, modelDir ?? $"{model.Text} (the Hub's listing)", bases, plans,
                DryRunRecord(modelDir, request, hubSource, log), baseRepository, log, ct).ConfigureAwait(false);
            return new PackJobResult(null, [], null, hubSource?.Commit, plan);
        }
        CheckSizes(request.MaxBlobSize, bases, plans);
        var bigFiles = tree.Entries.Count(e => e.Kind == ModelEntryKind.File && e.Size >= settings.LayerThreshold);
        var grouped = plans.Count(p => p.Entries.Count(e => e.Kind == LayerEntryKind.File) > 1 && p.Entries.Any(e => e.Kind == LayerEntryKind.File && e.Size >= settings.LayerThreshold));
        if (grouped > 0)
        {
            log.LogInformation("{Files} files of at least {Threshold} in {Layers} model layers ({Grouped} of them grouped, the largest files alone): the image keeps to {Max} layers (the layer budget)",
                bigFiles, SizeParser.Format(settings.LayerThreshold), plans.Count, grouped, bases.Max(b => b.Layers.Count) + settings.MaxModelLayers);
        }
        foreach (var big in Packer.OverQuayDefaultLimit(plans))
        {
            log.LogWarning("layer {Title} will be {Size} ({Bytes} bytes), over quay's default MAXIMUM_LAYER_SIZE 20G ({Limit} bytes): quay will refuse it; "
                + "leave duplicate weights out or push to a registry without that limit",
                big.Title, SizeParser.Format(big.TarSize), big.TarSize, Packer.QuayDefaultMaxLayerBytes);
        }
        var record = OpenRecord(modelDir, request, hubSource, log);
        if (hubSource is null)
        {
            Packer.CheckReadable(tree, settings, record);
        }

        // one writer per layout at a time; what temp files earlier, killed runs left are removed
        var locks = new List<IDisposable>();
        try
        {
            foreach (var l in request.Outputs.OfType<OciLayoutLocation>())
            {
                var (path, what) = (OciLayout.WriterLockPath(l.Path), $"OCI layout {Path.GetFullPath(l.Path)}");
                locks.Add(request.LockLayout is { } lockLayout
                    ? await lockLayout(path, what, ct).ConfigureAwait(false)
                    : await FileLock.AcquireAsync(path, what, null, log, ct).ConfigureAwait(false));
            }
            foreach (var destination in request.Outputs)
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

            var registryOutputs = request.Outputs.OfType<RegistryLocation>().Select(r => r.Reference).ToList();
            using var http = registryOutputs.Count > 0 ? HttpClientFactory.Create(request.Http) : null;
            RegistryTarget? registryTarget = null;
            var targets = new List<IImageTarget>();
            var registries = new List<(RegistryClient Client, string Repository)>();
            if (registryOutputs.Count > 0)
            {
                var clients = registryOutputs.Select(r => (r, new RegistryClient(r.Registry, http!, request.Http, request.Credentials, log) { AuthRepository = r.Repository })).ToList();
                registries.AddRange(clients.Select(c => (c.Item2, c.r.Repository)));
                registryTarget = new RegistryTarget(clients, request.Upload, request.Jobs, source, log, baseRepository);
                targets.Add(registryTarget); // registries commit first: the likeliest to fail
            }
            foreach (var destination in request.Outputs)
            {
                switch (destination)
                {
                    case OciLayoutLocation l:
                        targets.Add(new LayoutTarget(OciLayout.OpenOrCreate(l.Path), l.Reference));
                        break;
                    case OciArchiveLocation a:
                        targets.Add(new ArchiveTarget(new OciArchiveWriter(a.Path, settings.Created), a.Path, a.Reference));
                        break;
                }
            }
            await using var outputs = new ImageOutputs(targets, record, log);
            var result = await Packer.PackAsync(tree, bases, outputs, settings, request.Jobs, log, ct, hubSource).ConfigureAwait(false);
            await outputs.CommitAsync(result.Manifest, ct).ConfigureAwait(false);
            log.LogInformation("wrote {Outputs}: {Kind} {Digest} ({Platforms}), {Layers} model layers ({FromRecord} known from the layer record), {Read} of model layers read, image {Size}",
                outputs.Description, result.Manifest.MediaType == MediaTypes.ImageIndex ? "index" : "manifest", result.Manifest.Digest, string.Join(", ", result.Platforms), result.ModelLayers, outputs.LayersFromRecord, SizeParser.Format(outputs.LayerBytesRead), SizeParser.Format(result.ImageSize));
            if (hubSource is not null)
            {
                log.LogInformation("{Received} received from the Hub for {Files} file(s)", SizeParser.Format(hubSource.Received), hubSource.ReceivedPerFile.Count);
            }
            if (request.AfterCommit is { } afterCommit)
            {
                await afterCommit(new PackedImage(result, tree, outputs.FileSha256, registries, ModelName(model)), ct).ConfigureAwait(false);
            }

            var pushed = registryTarget?.Results ?? [];
            var references = request.Outputs.Select(d => d is RegistryLocation r
                ? pushed.First(p => p.Destination == r.Reference).PinnedReference
                : result.Manifest.Digest.ToString()).ToList();
            var imageUrl = pushed.Count > 0 ? pushed[0].PinnedReference : ImageUrlOf(request.Outputs[0], result.Manifest.Digest);
            return new PackJobResult(result, references, imageUrl, hubSource?.Commit, null);
        }
        finally
        {
            foreach (var l in locks)
            {
                l.Dispose();
            }
        }
    }

    /// <summary>IMAGE_URL for a local output: the transport and path, pinned by digest (the tag is dropped, as registry-push pins HOST/REPO@digest).</summary>
    public static string ImageUrlOf(ImageLocation destination, Digest digest) => destination switch
    {
        OciLayoutLocation l => $"oci:{l.Path}@{digest}",
        OciArchiveLocation a => $"oci-archive:{a.Path}@{digest}",
        _ => destination.ToString()!,
    };

    /// <summary>The model's name in its OpenSSF signature (informative only): the directory's name, or NAME of hf://ORG/NAME.</summary>
    public static string ModelName(PackModel model) =>
        model.Directory is { } dir ? Path.GetFileName(Path.TrimEndingDirectorySeparator(dir))
        : model.Hub is { } hub ? hub.RepoId[(hub.RepoId.LastIndexOf('/') + 1)..]
        : model.Text;

    /// <summary>
    /// The model layers the budget leaves after the largest base: a base that leaves none is a
    /// <see cref="BaseOverLayerBudgetException"/> naming both numbers.
    /// </summary>
    public static int ModelLayerBudget(int maxLayers, IReadOnlyList<BaseImage> bases)
    {
        var biggest = bases.MaxBy(b => b.Layers.Count)!;
        if (biggest.Layers.Count > maxLayers - 1)
        {
            var what = bases.Count > 1 ? $"{biggest.Description} ({biggest.Platform})" : biggest.Description;
            throw new BaseOverLayerBudgetException(what, biggest.Layers.Count, maxLayers);
        }
        return maxLayers - biggest.Layers.Count;
    }

    /// <summary>The maximum blob size, before anything is read or sent: the base layers and the planned model layers (sizes known up front).</summary>
    public static void CheckSizes(long? maxBlobSize, IReadOnlyList<BaseImage> bases, IReadOnlyList<LayerPlan> plans)
    {
        if (maxBlobSize is not { } max)
        {
            return;
        }
        foreach (var blob in bases.SelectMany(b => b.Layers).DistinctBy(l => l.Digest).Where(b => b.Size > max))
        {
            throw new BlobOverLimitException(blob, null, blob.Size, max);
        }
        foreach (var plan in plans.Where(p => p.TarSize > max))
        {
            throw new BlobOverLimitException(null, plan.Title, plan.TarSize, max);
        }
    }

    /// <summary>
    /// Checks each platform's base for sh and a harmless ENTRYPOINT. With all platforms asked for, platforms
    /// without sh are left out (unless <paramref name="allowNoShell"/>); a listed platform without sh is an error.
    /// </summary>
    public static IReadOnlyList<BaseImage> CheckBases(IReadOnlyList<BaseImage> bases, bool all, bool allowNoShell, bool clearEntrypoint, ILogger log, CancellationToken ct)
    {
        var kept = new List<BaseImage>();
        foreach (var baseImg in bases)
        {
            var what = bases.Count > 1 || all ? $"{baseImg.Description} ({baseImg.Platform})" : baseImg.Description;
            var hasShell = baseImg.HasShell(log, ct);
            if (hasShell == false)
            {
                var message = $"base image {what} has no /bin/sh, but KServe starts the modelcar with sh -c \"ln -sf ... && sleep infinity\"";
                if (all && !allowNoShell)
                {
                    log.LogInformation("base image {Base} has no /bin/sh: platform {Platform} left out (of all platforms, the ones with sh are taken)", what, baseImg.Platform);
                    continue;
                }
                if (!allowNoShell)
                {
                    throw new PackingException(message, reason: PackingReason.BaseWithoutShell);
                }
                log.LogWarning("{Message}: use a base with a shell (busybox, ubi-micro)", message);
            }
            else if (hasShell is null)
            {
                log.LogWarning("base image {Base}: could not check every layer for sh", what);
            }
            if (!clearEntrypoint && baseImg.EntrypointProblem() is { } entrypoint)
            {
                throw new PackingException($"base image {what} has ENTRYPOINT {entrypoint}: KServe only sets Args (sh -c ...), which it would swallow", reason: PackingReason.BaseEntrypoint);
            }
            kept.Add(baseImg);
        }
        return kept.Count > 0
            ? kept
            : throw new PackingException($"base image {bases[0].Description}: none of its platforms ({string.Join(", ", bases.Select(b => b.Platform))}) has /bin/sh", reason: PackingReason.NoPlatformWithShell);
    }

    private static IImageSource? OpenBase(PackRequest request, ILogger log) => request.Base switch
    {
        ScratchLocation => null,
        var local when LocalImage.IsLocal(local) => LocalImage.Open(local),
        RegistryLocation r => RegistryImageSource.Create(r.Reference, request.Http, request.Credentials, log),
        var other => throw new PackingInputException($"unsupported base image {other}"),
    };

    /// <summary>The record of layer digests: a given state directory must be writable; the model dir's .oci-pack/ is best effort (a warning at save).</summary>
    private static LayerDigestRecord? OpenRecord(string? modelDir, PackRequest request, HubModelSource? hub, ILogger log)
    {
        var stateDir = request.StateDirectory;
        if (modelDir is null && stateDir is null)
        {
            // a Hub model without a state directory: under the Hugging Face home (HF_HOME, …) when it can be written there
            var path = LayerDigestRecord.DefaultHubPath(HubPaths.TypeName(hub!.RepoType), hub.Reference.RepoId, request.Environment);
            var error = path is null ? "HF_HOME, XDG_CACHE_HOME and HOME are unset" : CannotWrite(Path.GetDirectoryName(path)!);
            if (error is not null)
            {
                var where = path is null ? "no Hugging Face home" : Path.GetDirectoryName(path)!;
                if (request.NoLayerRecord is { } tell)
                {
                    tell(where, error);
                }
                else
                {
                    log.LogWarning("no layer record for the Hub model ({Path}: {Error}): a re-run reads every layer from the Hub again; give a state directory or a writable HF_HOME to keep it", where, error);
                }
                return null;
            }
            log.LogInformation("layer record {Path} (under the Hugging Face home; a state directory puts it elsewhere)", path);
            return LayerDigestRecord.Open(path!, log);
        }
        if (stateDir is not null && CannotWrite(stateDir) is { } why)
        {
            throw new LayerRecordDirectoryException(stateDir, why);
        }
        return LayerDigestRecord.Open(LayerDigestRecord.PathFor(modelDir ?? stateDir!, stateDir), log);
    }

    /// <summary>The layer record a real run would use, read only (never created: a dry run writes nothing).</summary>
    private static LayerDigestRecord? DryRunRecord(string? modelDir, PackRequest request, HubModelSource? hub, ILogger log)
    {
        var stateDir = request.StateDirectory;
        var path = modelDir is null && stateDir is null
            ? LayerDigestRecord.DefaultHubPath(HubPaths.TypeName(hub!.RepoType), hub.Reference.RepoId, request.Environment)
            : LayerDigestRecord.PathFor(modelDir ?? stateDir!, stateDir);
        return path is not null && File.Exists(path) ? LayerDigestRecord.Open(path, log) : null;
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

    /// <summary>The dry run's plan (<see cref="PackPlan"/>); no record, layout, archive or upload session is made.</summary>
    private static async Task<PackPlan> DryRunAsync(PackRequest request, ModelTree tree, string source, IReadOnlyList<BaseImage> bases, IReadOnlyList<LayerPlan> plans,
        LayerDigestRecord? record, (string Host, string Repository)? baseRepository, ILogger log, CancellationToken ct)
    {
        using var http = request.Outputs.Any(d => d is RegistryLocation) ? HttpClientFactory.Create(request.Http) : null;
        var outputs = new List<PlanOutput>();
        foreach (var d in request.Outputs)
        {
            switch (d)
            {
                case RegistryLocation r:
                    // the registry must answer, as the real run's first upload needs it to (a GET of /v2/, no write)
                    var client = new RegistryClient(r.Reference.Registry, http!, request.Http, request.Credentials, log) { AuthRepository = r.Reference.Repository };
                    await client.PingAsync(ct).ConfigureAwait(false);
                    outputs.Add(PlanOutput.Registry(d.ToString()!, new RegistryRepository(client, r.Reference.Repository)));
                    break;
                case OciLayoutLocation l:
                    outputs.Add(PlanOutput.Layout(d.ToString()!, l.Path));
                    break;
                case OciArchiveLocation a:
                    outputs.Add(PlanOutput.Archive(d.ToString()!, a.Path));
                    break;
            }
        }
        return await PackPlan.CreateAsync(tree, source, bases, plans, record, outputs, request.MaxBlobSize, ct, maxLayers: request.MaxLayers, baseRepository: baseRepository).ConfigureAwait(false);
    }
}

/// <summary>The outputs of a pack: layouts, oci-archives and registry tags, each named once.</summary>
public static class PackOutputs
{
    /// <summary>
    /// Parses each output (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://HOST/REPO[:TAG]): a malformed one is
    /// <see cref="ImageLocation.Parse"/>'s <see cref="FormatException"/>; another transport or a digest on a registry output a
    /// <see cref="PackingInputException"/> starting with the text; two names for one place a <see cref="SameOutputTwiceException"/>.
    /// </summary>
    public static IReadOnlyList<ImageLocation> Parse(IReadOnlyList<string> texts)
    {
        var outputs = new List<ImageLocation>();
        foreach (var text in texts)
        {
            var location = ImageLocation.Parse(text);
            if (location is not (OciLayoutLocation or OciArchiveLocation or RegistryLocation))
            {
                throw new PackingInputException($"'{text}': use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST[:PORT]/REPO[:TAG]");
            }
            if (location is RegistryLocation { Reference.Digest: not null })
            {
                throw new PackingInputException($"'{text}': a registry output takes a tag, not a digest (the digest is known only after packing)");
            }
            var key = PathOf(location);
            if (outputs.Any(o => PathOf(o) == key))
            {
                throw new SameOutputTwiceException(text);
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
}
