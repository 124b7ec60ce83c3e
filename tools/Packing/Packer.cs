using System.Globalization;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.IO;
using ModelCar.Oci;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;

public sealed record PackSettings
{
    public required string ModelsPath { get; init; }
    public required int Uid { get; init; }
    public required int Gid { get; init; }
    public required string User { get; init; }
    public required long LayerThreshold { get; init; }
    public required DateTimeOffset Created { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();
    public IReadOnlyDictionary<string, string> Annotations { get; init; } = new Dictionary<string, string>();
    public bool ClearEntrypoint { get; init; }

    /// <summary>
    /// sha256 (hex) of each model file by its source path, for the layer annotations: <see cref="Packer.PackAsync(ModelTree, IReadOnlyList{BaseImage}, ImageOutputs, PackSettings, int, ILogger, CancellationToken, ILayerFileSource?)"/>
    /// sets it from the hashes taken inline during the one read (<see cref="ImageOutputs.FileSha256"/>).
    /// </summary>
    public IReadOnlyDictionary<string, string> FileSha256 { get; init; } = new Dictionary<string, string>();

    /// <summary>sha256 (hex) a downloader verified (hf-fetch's record), by source path: each must equal the inline hash, else the pack fails.</summary>
    public IReadOnlyDictionary<string, string> VerifiedFileSha256 { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// The part of <see cref="VerifiedFileSha256"/> whose files still have the identity they had when verified
    /// (<see cref="HfSnapshot.TrustedSha256"/>): taken as they are, these files are not hashed (the layer digest is).
    /// </summary>
    public IReadOnlyDictionary<string, string> TrustedFileSha256 { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// At most this many model layers (null: no limit, a layer per file at or above the threshold): the image's layer budget
    /// minus the base's layers. Files at or above the threshold are grouped when they would exceed it (<see cref="Packer.Plan"/>).
    /// </summary>
    public int? MaxModelLayers { get; init; }

    /// <summary>A grouped layer never exceeds this many bytes (a registry's blob limit; null: none). A file alone over it is left alone (the caller refuses it).</summary>
    public long? MaxLayerBytes { get; init; }

    /// <summary>Add a ModelPack manifest over the same model layers to the image index (<see cref="ModelPackAssembly"/>; one platform becomes an index too).</summary>
    public bool ModelPack { get; init; }

    /// <summary>The model's config.json (transformers' keys), for the ModelPack config; null when unknown.</summary>
    public byte[]? ModelConfigJson { get; init; }

    /// <summary>The model's name (the Hub repo id) when known, for the ModelPack config.</summary>
    public string? ModelName { get; init; }
}

/// <summary><see cref="Manifest"/> is the root: the manifest for one platform, the image index for several.</summary>
public sealed record PackResult(Descriptor Manifest, long ImageSize, int ModelLayers)
{
    /// <summary>The platforms packed, in the index's order.</summary>
    public IReadOnlyList<Platform> Platforms { get; init; } = [];
}

/// <summary>Builds the image: plan the model layers, copy the base blobs, write layers, config, manifest, commit.</summary>
public static class Packer
{
    /// <summary>
    /// Quay's default MAXIMUM_LAYER_SIZE "20G", checked against the running total of one blob upload.
    /// Read as 20·10^9 bytes (the smaller reading of "20G"), so the warning is never late.
    /// </summary>
    public const long QuayDefaultMaxLayerBytes = 20_000_000_000;

    /// <summary>
    /// Model layers: one per file of at least the threshold (title = its path in the image), and
    /// one for everything else — small files, symlinks — titled with the models path. Every layer
    /// carries the parent directories of its entries (0755), so each unpacks on its own. Entries
    /// are in ordinal path order; layers: the small-files layer first, then the big files by path.
    /// <para>
    /// With <see cref="PackSettings.MaxModelLayers"/> and more layers than that, the big files are grouped
    /// (<see cref="GroupBigFiles"/>): a grouped layer is titled as a group (<see cref="GroupTitle"/>) and ordered by its
    /// first path. Within the budget the plan is exactly the ungrouped one.
    /// </para>
    /// </summary>
    public static IReadOnlyList<LayerPlan> Plan(ModelTree tree, PackSettings settings)
    {
        var attributes = Attributes(settings);
        var root = settings.ModelsPath.Trim('/');
        var plans = new List<LayerPlan>();
        var small = tree.Entries.Where(e => e.Kind == ModelEntryKind.Symlink || e.Size < settings.LayerThreshold).ToList();
        var big = tree.Entries.Where(e => e.Kind == ModelEntryKind.File && e.Size >= settings.LayerThreshold).ToList();
        int needed = (small.Count > 0 ? 1 : 0) + big.Count;
        if (settings.MaxModelLayers is { } budget && needed > budget)
        {
            if (budget < 1)
            {
                throw new PackingException($"no layer is left for the model: the layer budget is used up by the base", reason: PackingReason.LayerBudget);
            }
            if (budget == 1)
            {
                return [MakePlan(GroupTitle(root, tree.Entries), root, tree.Entries, attributes)];
            }
            if (small.Count > 0)
            {
                plans.Add(MakePlan("/" + root, root, small, attributes));
            }
            foreach (var group in GroupBigFiles(big, budget - plans.Count, settings.MaxLayerBytes, entries => MakePlan("/" + root, root, entries, attributes).TarSize))
            {
                plans.Add(group.Count == 1 ? MakePlan($"/{root}/{group[0].RelativePath}", root, group, attributes) : MakePlan(GroupTitle(root, group), root, group, attributes));
            }
            return plans;
        }
        if (small.Count > 0)
        {
            plans.Add(MakePlan("/" + root, root, small, attributes));
        }
        foreach (var file in big)
        {
            plans.Add(MakePlan($"/{root}/{file.RelativePath}", root, [file], attributes));
        }
        return plans;
    }

    /// <summary>Files listed by name in a group's title; the rest are counted.</summary>
    public const int FilesNamedInGroupTitle = 2;

    /// <summary>
    /// The title (org.opencontainers.image.title, and the history's "add …") of a layer that groups files of at least the
    /// threshold: the models path, then in parentheses that it is a group, how many files and the first paths, e.g.
    /// <c>/models (group of 2 files: model-00001-of-00200.safetensors, model-00127-of-00200.safetensors)</c>. Never a file's
    /// path, so no reader takes the layer for one file (a one-file layer is titled with its file's path, the small-files
    /// layer with the models path, as before); the exact list with each file's sha256 is the io.modelcar.files.sha256 annotation.
    /// </summary>
    public static string GroupTitle(string root, IReadOnlyList<ModelEntry> group)
    {
        var paths = group.Select(e => e.RelativePath).Order(StringComparer.Ordinal).ToList();
        var named = string.Join(", ", paths.Take(FilesNamedInGroupTitle));
        var more = paths.Count > FilesNamedInGroupTitle ? $", … {paths.Count - FilesNamedInGroupTitle} more" : "";
        return $"/{root} (group of {paths.Count} files: {named}{more})";
    }

    /// <summary>Whether <paramref name="title"/> is a <see cref="GroupTitle"/>.</summary>
    public static bool IsGroupTitle(string title) => title.Contains(" (group of ", StringComparison.Ordinal);

    /// <summary>
    /// The big files in at most <paramref name="slots"/> layers, by longest-first assignment: the files from the largest
    /// down (ties by path, ordinal) each go to the layer with the fewest bytes so far (ties: the earlier layer), so the
    /// <paramref name="slots"/> largest files start alone and get company only when every other layer is already at least
    /// as big — the largest files stay alone as long as the budget allows, groups are balanced (equal shards pair up),
    /// the largest layer is kept small, and the result depends only on the paths and sizes (same inputs, same layers on
    /// any machine). A file that would take the lightest layer over <paramref name="maxLayerBytes"/> (its tar size) fits
    /// nowhere and the plan fails. (When a file alone is over that limit, the limit is not applied here: the caller
    /// refuses that file with its own error.) Layers ordered by their first path; a one-file layer is the ungrouped plan's.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<ModelEntry>> GroupBigFiles(IReadOnlyList<ModelEntry> big, int slots, long? maxLayerBytes, Func<IReadOnlyList<ModelEntry>, long> tarSize)
    {
        slots = Math.Max(slots, 1);
        if (maxLayerBytes is { } cap && big.Any(e => tarSize([e]) > cap))
        {
            maxLayerBytes = null;
        }
        var groups = new List<List<ModelEntry>>();
        var bytes = new List<long>();
        var lightest = new PriorityQueue<int, (long Bytes, int Index)>();
        foreach (var file in big.OrderByDescending(e => e.Size).ThenBy(e => e.RelativePath, StringComparer.Ordinal))
        {
            if (groups.Count < slots)
            {
                groups.Add([file]);
                bytes.Add(file.Size);
                lightest.Enqueue(groups.Count - 1, (file.Size, groups.Count - 1));
                continue;
            }
            int i = lightest.Dequeue();
            var candidate = groups[i].Append(file).OrderBy(e => e.RelativePath, StringComparer.Ordinal).ToList();
            if (maxLayerBytes is { } max && tarSize(candidate) is var size && size > max)
            {
                throw new PackingException($"{big.Count} files of at least the layer threshold do not fit in {slots} layer(s) of at most {max} bytes each: "
                    + $"{file.RelativePath} ({file.Size} bytes) would make even the smallest layer so far {size} bytes",
                    reason: PackingReason.LayerBudget);
            }
            groups[i] = candidate;
            bytes[i] += file.Size;
            lightest.Enqueue(i, (bytes[i], i));
        }
        return [.. groups.OrderBy(g => g[0].RelativePath, StringComparer.Ordinal)];
    }


    /// <summary>
    /// Before anything is written: every local file of a layer the record does not know (so it will be read) must be
    /// readable. Files of recorded layers are not opened (an unchanged re-run needs no read permission).
    /// </summary>
    public static void CheckReadable(ModelTree tree, PackSettings settings, LayerDigestRecord? record)
    {
        var toRead = Plan(tree, settings).Where(p => record?.Get(p.Key) is null)
            .SelectMany(p => p.Entries).Where(e => e.Kind == LayerEntryKind.File && e.SourcePath is not null)
            .Select(e => e.SourcePath!).ToHashSet(StringComparer.Ordinal);
        ModelTree.CheckReadable(tree.Entries.Where(e => toRead.Contains(e.FullPath)));
    }

    /// <summary>The planned layers quay's default limit would refuse.</summary>
    public static IEnumerable<LayerPlan> OverQuayDefaultLimit(IEnumerable<LayerPlan> plans) => plans.Where(p => p.TarSize > QuayDefaultMaxLayerBytes);

    public static LayerEntryAttributes Attributes(PackSettings settings) =>
        new() { Uid = settings.Uid, Gid = settings.Gid, ModificationTime = settings.Created };

    private static LayerPlan MakePlan(string title, string root, IReadOnlyList<ModelEntry> entries, LayerEntryAttributes attributes)
    {
        var dirs = new SortedSet<string>(StringComparer.Ordinal);
        var files = new List<LayerEntry>();
        foreach (var e in entries)
        {
            var tarPath = root + "/" + e.RelativePath;
            for (int i = tarPath.IndexOf('/'); i > 0; i = tarPath.IndexOf('/', i + 1))
            {
                dirs.Add(tarPath[..i]);
            }
            files.Add(e.Kind == ModelEntryKind.File
                ? new LayerEntry(tarPath, LayerEntryKind.File, e.FullPath, e.Size, ModifiedUtc: e.ModifiedUtc)
                : new LayerEntry(tarPath, LayerEntryKind.Symlink, LinkTarget: e.LinkTarget));
        }
        var all = dirs.Select(d => new LayerEntry(d, LayerEntryKind.Directory)).Concat(files)
            .OrderBy(e => e.TarPath, StringComparer.Ordinal).ToList();
        var inodes = entries.Where(e => e.Kind == ModelEntryKind.File).ToDictionary(e => e.FullPath, e => e.Inode, StringComparer.Ordinal);
        return new LayerPlan(title, all, entries.Sum(e => e.Size), LayerWriter.PredictSize(all, attributes)) { Key = LayerPlan.KeyOf(all, inodes, attributes) };
    }

    public static Task<PackResult> PackAsync(ModelTree tree, BaseImage baseImage, ImageOutputs sink, PackSettings settings, int jobs, ILogger logger, CancellationToken ct,
        ILayerFileSource? files = null) =>
        PackAsync(tree, [baseImage], sink, settings, jobs, logger, ct, files);

    /// <summary>
    /// One platform per base (<see cref="BaseImage.LoadAll"/>): the model layers are written once and
    /// shared; configs, manifests and the index come from <see cref="ImageAssembly"/>.
    /// </summary>
    /// <param name="files">Where the model files' bytes come from (null: the tree's local files; e.g. the Hub for hf://).</param>
    public static async Task<PackResult> PackAsync(ModelTree tree, IReadOnlyList<BaseImage> bases, ImageOutputs sink, PackSettings settings, int jobs, ILogger logger, CancellationToken ct,
        ILayerFileSource? files = null)
    {
        var plans = Plan(tree, settings); // the command warns about layers over quay's default limit (OverQuayDefaultLimit) before
        // each platform's base layers (a blob two platforms share is copied once)
        var baseLayers = bases.SelectMany(b => b.Layers.Select(l => (b.Source, Layer: l))).DistinctBy(x => x.Layer.Digest).ToList();
        long baseBytes = baseLayers.Sum(x => x.Layer.Size);
        logger.LogInformation("packing {Files} entries ({Size}) from {Model} into {Layers} layers on {Base} ({Platforms}; {BaseLayers} base layers, {BaseSize}) -> {Output}",
            tree.Entries.Count, SizeParser.Format(tree.TotalBytes), tree.Root, plans.Count, bases[0].Description, string.Join(", ", bases.Select(b => b.Platform)), baseLayers.Count, SizeParser.Format(baseBytes), sink.Description);
        using var progress = new ProgressReporter(logger, "packing", tree.TotalBytes + baseBytes);

        foreach (var (source, layer) in baseLayers)
        {
            await sink.CopyBaseBlobAsync(source!, layer, progress.Add, ct).ConfigureAwait(false);
        }
        // ModelPack: the model's config.json is kept while its layer streams (no second read, no second Hub request)
        var configJson = settings.ModelPack ? ModelConfigEntry(plans, settings) : null;
        if (configJson is not null)
        {
            sink.CaptureTarPaths = new HashSet<string>(StringComparer.Ordinal) { configJson.TarPath };
        }
        long layersStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        var modelLayers = await sink.WriteLayersAsync(plans, Attributes(settings), jobs, progress.Add, ct, files, settings.VerifiedFileSha256, settings.TrustedFileSha256).ConfigureAwait(false);
        if (sink.LayerBytesRead > 0)
        {
            var took = System.Diagnostics.Stopwatch.GetElapsedTime(layersStarted);
            logger.LogInformation("model layers: {Size} in {Seconds:0.0} s, {Rate:0.0} MB/s; summed over the layers: reading the source {Read:0.0} s, waiting for the outputs {Wait:0.0} s: {Bottleneck} set the pace",
                SizeParser.Format(sink.LayerBytesRead), took.TotalSeconds, sink.LayerBytesRead / Math.Max(took.TotalSeconds, 0.001) / 1e6,
                sink.Times.Reading.TotalSeconds, sink.Times.WaitingForOutputs.TotalSeconds, sink.Times.Bottleneck);
        }
        settings = settings with { FileSha256 = sink.FileSha256 };
        if (configJson is not null)
        {
            settings = settings with { ModelConfigJson = await ModelConfigJsonAsync(configJson, sink, files, logger, ct).ConfigureAwait(false) };
        }

        var image = ImageAssembly.Assemble(bases, plans, modelLayers, settings);
        foreach (var blob in image.Blobs)
        {
            sink.WriteSmallBlob(blob.Content, blob.MediaType);
        }
        return new PackResult(image.Root, image.ImageSize, modelLayers.Length) { Platforms = [.. image.Platforms] };
    }

    /// <summary>The model's top-level config.json (transformers' keys) when it is a file of at most <see cref="ImageOutputs.MaxCapturedFileBytes"/>, else null (its fields are left out).</summary>
    public static LayerEntry? ModelConfigEntry(IReadOnlyList<LayerPlan> plans, PackSettings settings)
    {
        var tarPath = settings.ModelsPath.Trim('/') + "/config.json";
        return plans.SelectMany(p => p.Entries).FirstOrDefault(e => e.Kind == LayerEntryKind.File && e.TarPath == tarPath && e.Size <= ImageOutputs.MaxCapturedFileBytes);
    }

    /// <summary>
    /// config.json as its layer streamed; when that layer was not read (its digest came from the layer record), the file
    /// alone, once (a local file, or one request to the Hub for a file of at most 1 MiB, checked against the listing's hash).
    /// </summary>
    private static async Task<byte[]> ModelConfigJsonAsync(LayerEntry entry, ImageOutputs sink, ILayerFileSource? files, ILogger logger, CancellationToken ct)
    {
        if (sink.CapturedFiles.TryGetValue(entry.TarPath, out var captured))
        {
            return captured;
        }
        logger.LogInformation("{Path}: its layer is known from the layer record (not read), so the file alone is read for the ModelPack config ({Size} bytes)", entry.TarPath, entry.Size);
        try
        {
            await using var stream = files?.Open(entry, 0, ct) ?? File.OpenRead(entry.SourcePath ?? throw new InvalidOperationException($"{entry.TarPath}: no source"));
            var content = new byte[entry.Size];
            await stream.ReadExactlyAsync(content, ct).ConfigureAwait(false);
            if (await stream.ReadAsync(new byte[1], ct).ConfigureAwait(false) != 0)
            {
                throw new SourceChangedException($"{entry.TarPath}: longer than the {entry.Size} bytes planned");
            }
            return content;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // not left out silently: the ModelPack config (and the index digest) would depend on it
            throw new PackingException($"{entry.SourcePath}: cannot read it for the ModelPack config: {e.Message}", e);
        }
    }

    public static ImageConfig BuildConfig(ImageConfig baseConfig, IReadOnlyList<LayerPlan> plans, IReadOnlyList<Descriptor> layers, PackSettings settings)
    {
        var created = FormatTime(settings.Created);
        var container = baseConfig.Config ?? new ContainerConfig();
        var labels = new Dictionary<string, string>(container.Labels ?? new Dictionary<string, string>());
        foreach (var (k, v) in settings.Labels)
        {
            labels[k] = v;
        }
        var history = (baseConfig.History ?? []).ToList();
        // history entries pair with the non-empty layers in order (podman/docker history): a base without
        // history (or with fewer non-empty entries than layers) gets one entry per base layer it lacks, so
        // the model's entries pair with the model layers, not with the base's
        int missing = baseConfig.RootFs.DiffIds.Count - history.Count(h => h.EmptyLayer != true);
        for (int i = 0; i < missing; i++)
        {
            history.Add(new HistoryEntry { Created = baseConfig.Created, CreatedBy = "oci-pack: base layer (the base image records no history for it)", Comment = "oci-pack" });
        }
        for (int i = 0; i < plans.Count; i++)
        {
            history.Add(new HistoryEntry { Created = created, CreatedBy = $"oci-pack: add {plans[i].Title}", Comment = "oci-pack" });
        }
        return baseConfig with
        {
            Created = created,
            Config = container with
            {
                User = settings.User,
                Labels = labels.Count == 0 ? null : Sorted(labels),
                Entrypoint = settings.ClearEntrypoint ? null : container.Entrypoint,
            },
            RootFs = new RootFs { Type = "layers", DiffIds = [.. baseConfig.RootFs.DiffIds, .. layers.Select(l => l.Digest)] },
            History = history,
        };
    }

    /// <summary>Go's encoding/json writes map keys sorted; so do we (identical bytes, reproducible).</summary>
    private static SortedDictionary<string, string> Sorted(IReadOnlyDictionary<string, string> d) => new(d.ToDictionary(), StringComparer.Ordinal);

    public static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>SOURCE_DATE_EPOCH (seconds) if set, else the Unix epoch.</summary>
    public static DateTimeOffset CreatedFrom(string? sourceDateEpoch)
    {
        if (string.IsNullOrWhiteSpace(sourceDateEpoch))
        {
            return DateTimeOffset.UnixEpoch;
        }
        if (!long.TryParse(sourceDateEpoch.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long seconds) || seconds > 253402300799)
        {
            throw new PackingInputException($"SOURCE_DATE_EPOCH '{sourceDateEpoch}' is not a number of seconds since 1970");
        }
        return DateTimeOffset.FromUnixTimeSeconds(seconds);
    }
}
