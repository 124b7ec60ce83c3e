using Microsoft.Extensions.Logging;
using ModelCar.Common.IO;
using ModelCar.Oci;
using ModelCar.Oci.Tar;
using ModelCar.Registry;

namespace ModelCar.Packing;

/// <summary>
/// One place the image goes (a layout, an oci-archive, a group of registry destinations). Model
/// layers come as <see cref="TarLayer"/>s: the target opens blob writers the one read feeds
/// (<see cref="BlobFanOut"/>), or none when it needs no bytes (it has the digest already, or sends
/// the blob itself later). Nothing is visible under a tag before <see cref="CommitAsync"/>.
/// </summary>
public interface IImageTarget : IAsyncDisposable
{
    string Description { get; }

    /// <summary>Before any layer: the layers in plan order (an archive reserves their regions in that order).</summary>
    void PrepareLayers(IReadOnlyList<TarLayer> layers) { }

    /// <summary>The writers for a base blob (none when this target has it already, or sends it itself later).</summary>
    IReadOnlyList<IBlobWriter> OpenBaseBlob(Descriptor blob);

    /// <summary>The writers for layer <paramref name="index"/>; <paramref name="known"/> is its digest from an earlier run, if recorded.</summary>
    Task<IReadOnlyList<IBlobWriter>> OpenLayerAsync(int index, TarLayer layer, Digest? known, CancellationToken ct);

    /// <summary>
    /// The layer's final descriptor (after its writers committed, or taken from the record); <paramref name="streamed"/>
    /// is true only when this target's own writers took the bytes.
    /// </summary>
    void LayerDone(int index, Descriptor descriptor, TarLayer layer, bool streamed) { }

    void AddSmallBlob(byte[] content, Descriptor descriptor);

    /// <summary>Makes the image visible (index.json, the archive's rename, the registries' manifests). Last step.</summary>
    Task CommitAsync(Descriptor manifest, CancellationToken ct);
}

/// <summary>All the outputs of one pack: base blobs, model layers from one read, config and manifest go to each.</summary>
public sealed class ImageOutputs(IReadOnlyList<IImageTarget> targets, LayerDigestRecord? record, ILogger logger) : IAsyncDisposable
{
    private long _modelBytesRead;
    private int _layersFromRecord;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _fileSha256 = new(StringComparer.Ordinal);

    public IReadOnlyList<IImageTarget> Targets => targets;

    public string Description => string.Join(", ", targets.Select(t => t.Description));

    /// <summary>Model layer bytes generated in this run (0 for a re-run that needed none).</summary>
    public long LayerBytesRead => Interlocked.Read(ref _modelBytesRead);

    public int LayersFromRecord => _layersFromRecord;

    /// <summary>Where the streamed layers' time went, summed over the layers (and so over the parallel jobs).</summary>
    public FanOutTimes Times { get; } = new();

    /// <summary>
    /// After <see cref="WriteLayersAsync"/>: the sha256 (hex) of every model file by its source path, hashed
    /// inline during the layer's one read (or taken from the layer record with its digest), for the layers'
    /// provenance annotations (<see cref="PackSettings.FileSha256"/>).
    /// </summary>
    public IReadOnlyDictionary<string, string> FileSha256 => _fileSha256;

    /// <summary>Files kept by <see cref="CaptureTarPaths"/> are at most this big (1 MiB: a config.json is a few KiB).</summary>
    public const long MaxCapturedFileBytes = 1 << 20;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte[]> _captured = new(StringComparer.Ordinal);

    /// <summary>
    /// Tar paths of small files (at most <see cref="MaxCapturedFileBytes"/>) whose bytes <see cref="WriteLayersAsync"/> keeps as
    /// their layer streams (<see cref="LayerFileCapture"/>: the same buffers, no second read), e.g. the model's config.json.
    /// </summary>
    public IReadOnlySet<string> CaptureTarPaths { get; set; } = new HashSet<string>();

    /// <summary>After <see cref="WriteLayersAsync"/>: the content of each <see cref="CaptureTarPaths"/> file whose layer was read (verified with it); a layer known from the record was not.</summary>
    public IReadOnlyDictionary<string, byte[]> CapturedFiles => _captured;

    /// <summary>
    /// A base blob to every target that needs its bytes, in one verified read through the same fan-out as
    /// the model layers (<see cref="BlobFanOut"/>); not read at all when no target needs it.
    /// </summary>
    public async Task CopyBaseBlobAsync(IImageSource source, Descriptor blob, Action<long> progress, CancellationToken ct)
    {
        var writers = new List<IBlobWriter>();
        foreach (var t in targets)
        {
            writers.AddRange(t.OpenBaseBlob(blob));
        }
        if (writers.Count == 0)
        {
            return;
        }
        await BlobFanOut.CopyAsync(() => source.OpenVerified(blob), blob.Size, writers, $"blob {blob.Digest}", ct, known: blob.Digest, progress: progress)
            .ConfigureAwait(false);
    }

    /// <summary>
    /// Writes the model layers (up to <paramref name="jobs"/> at once, biggest first): each is read
    /// once and fed to every target's writers, or taken from the record when no target needs its bytes.
    /// Descriptors in plan order.
    /// </summary>
    /// <param name="files">Where the layers' file bytes come from (null: local files); a file whose bytes do not
    /// match its source's hash (<see cref="SourceCorruptedException"/>) abandons the layer's blobs (nothing
    /// committed) and is read once more; a second mismatch fails with both hashes.</param>
    /// <param name="verifiedSha256">sha256 (hex) a downloader verified, by source path (hf-fetch's record): each file's
    /// inline hash must equal it, else the run fails before the layer is committed.</param>
    /// <param name="trustedSha256">sha256 (hex) by source path taken without hashing (files that still have the identity
    /// they had when a downloader verified them): a layer whose files are all here is read once and hashed once (its digest).</param>
    public async Task<Descriptor[]> WriteLayersAsync(IReadOnlyList<LayerPlan> plans, LayerEntryAttributes attributes, int jobs, Action<long> progress, CancellationToken ct,
        ILayerFileSource? files = null, IReadOnlyDictionary<string, string>? verifiedSha256 = null, IReadOnlyDictionary<string, string>? trustedSha256 = null)
    {
        Func<LayerEntry, string?>? trustedOf = trustedSha256 is { Count: > 0 }
            ? e => e.SourcePath is { } p && trustedSha256.TryGetValue(p, out var sha) ? sha : null
            : null;
        var layers = plans.Select(p => new TarLayer(p.Entries, attributes, files)).ToList();
        for (int i = 0; i < plans.Count; i++)
        {
            if (layers[i].Size != plans[i].TarSize)
            {
                throw new InvalidOperationException($"layer {plans[i].Title}: {layers[i].Size} bytes generated, {plans[i].TarSize} predicted");
            }
        }
        foreach (var t in targets)
        {
            t.PrepareLayers(layers);
        }
        var results = new Descriptor[plans.Count];
        var order = Enumerable.Range(0, plans.Count).OrderByDescending(i => plans[i].TarSize).ToList();
        await Parallel.ForEachAsync(order, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(jobs, 1), CancellationToken = ct }, async (i, token) =>
        {
            var plan = plans[i];
            var recorded = record?.Get(plan.Key);
            var known = recorded?.Digest;
            Digest digest = default!;
            IReadOnlyDictionary<string, string> fileSha256 = recorded?.Files ?? new Dictionary<string, string>();
            bool streamed = false;
            // which targets took this layer's bytes: each output keeps its own "has it" bookkeeping (a layout
            // writing the layer says nothing about a registry that declined it because of the record)
            var streamedTo = new bool[targets.Count];
            for (SourceCorruptedException? first = null; ;)
            {
                var writers = new List<IBlobWriter>();
                try
                {
                    for (int t = 0; t < targets.Count; t++)
                    {
                        var opened = await targets[t].OpenLayerAsync(i, layers[i], known, token).ConfigureAwait(false);
                        streamedTo[t] = opened.Count > 0;
                        writers.AddRange(opened);
                    }
                }
                catch
                {
                    foreach (var w in writers)
                    {
                        await w.DisposeAsync().ConfigureAwait(false);
                    }
                    throw;
                }
                streamed = writers.Count > 0;
                if (!streamed)
                {
                    digest = known ?? throw new InvalidOperationException($"layer {plan.Title}: no output needs it and its digest is unknown");
                    Interlocked.Increment(ref _layersFromRecord);
                    progress(plan.ModelBytes);
                    logger.LogDebug("layer {Title}: {Digest} from the layer record, not read", plan.Title, digest);
                    break;
                }
                try
                {
                    // each file's sha256 from the same buffers as the layer digest (no second read), unless known already
                    // (then not hashed at all: a layer of trusted files costs one sha256, its digest)
                    using var fileHasher = new LayerFileHasher(layers[i], (entry, sha) => CheckVerified(entry, sha, verifiedSha256), trustedOf);
                    bool hashFiles = LayerFileHasher.NeedsBytes(layers[i], trustedOf);
                    // a new capture per attempt: what a corrupted read left is dropped with it
                    var capture = CaptureTarPaths.Count > 0 && new LayerFileCapture(layers[i], CaptureTarPaths, MaxCapturedFileBytes) is { IsNeeded: true } c ? c : null;
                    Action<ReadOnlyMemory<byte>>? observe = (hashFiles, capture) switch
                    {
                        (true, null) => data => fileHasher.Append(data.Span),
                        (true, _) => data =>
                        {
                            fileHasher.Append(data.Span);
                            capture.Append(data.Span);
                        },
                        (false, null) => null,
                        (false, _) => data => capture.Append(data.Span),
                    };
                    var times = new FanOutTimes();
                    long started = System.Diagnostics.Stopwatch.GetTimestamp();
                    digest = await BlobFanOut.CopyAsync(() => layers[i].OpenAt(0, n =>
                    {
                        Interlocked.Add(ref _modelBytesRead, n);
                        progress(n);
                    }, token), layers[i].Size, writers, $"layer {plan.Title}", token, observe, times).ConfigureAwait(false);
                    var took = System.Diagnostics.Stopwatch.GetElapsedTime(started);
                    Times.Add(times);
                    logger.LogInformation("layer {Title}: {Size} to {Outputs} output(s) in {Seconds:0.0} s, {Rate:0.0} MB/s; reading the source {Read:0.0} s, waiting for the outputs {Wait:0.0} s",
                        plan.Title, SizeParser.Format(layers[i].Size), writers.Count, took.TotalSeconds, layers[i].Size / Math.Max(took.TotalSeconds, 0.001) / 1e6,
                        times.Reading.TotalSeconds, times.WaitingForOutputs.TotalSeconds);
                    fileSha256 = hashFiles ? fileHasher.Result : LayerFileHasher.KnownOnly(layers[i], trustedOf!);
                    foreach (var (path, content) in capture?.Result ?? new Dictionary<string, byte[]>())
                    {
                        _captured[path] = content;
                    }
                    if (!hashFiles)
                    {
                        logger.LogDebug("layer {Title}: file sha256 from hf-fetch's verified record (identity unchanged since), not hashed", plan.Title);
                    }
                }
                catch (SourceCorruptedException e) when (first is null)
                {
                    // the writers were disposed without commit (nothing under a digest): read the layer once more
                    logger.LogWarning("layer {Title}: {Why}; the layer's upload is abandoned, reading it once more", plan.Title, e.Message);
                    first = e;
                    continue;
                }
                catch (SourceCorruptedException e)
                {
                    throw new PackingException($"{e.File}: hash mismatch twice: expected {e.Expected}, got {e.Actual}"
                        + (e.Actual == first!.Actual ? " both times" : $" (first try: {first.Actual})") + $"; layer {plan.Title} not committed");
                }
                if (known is { } k && k != digest)
                {
                    logger.LogWarning("layer {Title}: recorded digest {Known} was stale, the file now gives {Digest}", plan.Title, k, digest);
                }
                break;
            }
            record?.Set(plan.Key, digest, fileSha256);
            // recorded as soon as the layer is committed (its writers committed: the layout's blob renamed into
            // place, the registry's PUT answered with the digest), so a killed or failed run leaves the record of
            // every finished layer and a re-run reads and sends only the others; each output still checks that it
            // holds a recorded blob (layout: stat, registry: HEAD at commit, archive: always written)
            record?.Save();
            foreach (var e in plan.Entries.Where(e => e.Kind == LayerEntryKind.File && e.SourcePath is not null))
            {
                _fileSha256[e.SourcePath!] = fileSha256.TryGetValue(e.TarPath, out var sha)
                    ? sha
                    : throw new InvalidOperationException($"layer {plan.Title}: no sha256 for {e.TarPath}");
            }
            var descriptor = new Descriptor
            {
                MediaType = MediaTypes.Layer,
                Digest = digest,
                Size = layers[i].Size,
                Annotations = new Dictionary<string, string> { [Annotations.Title] = plan.Title },
            };
            for (int t = 0; t < targets.Count; t++)
            {
                targets[t].LayerDone(i, descriptor, layers[i], streamed && streamedTo[t]);
            }
            results[i] = descriptor;
        }).ConfigureAwait(false);
        return results;
    }

    private static void CheckVerified(LayerEntry entry, string sha, IReadOnlyDictionary<string, string>? verified)
    {
        if (entry.SourcePath is { } path && verified is not null && verified.TryGetValue(path, out var expected) && !string.Equals(expected, sha, StringComparison.OrdinalIgnoreCase))
        {
            throw new PackingException($"'{path}' does not match hf-fetch's verified record: sha256 {sha}, recorded {expected.ToLowerInvariant()}; the file changed after the download (fetch it again)");
        }
    }

    public Descriptor WriteSmallBlob(byte[] content, string mediaType)
    {
        var descriptor = new Descriptor { MediaType = mediaType, Digest = Digest.Sha256(content), Size = content.Length };
        foreach (var t in targets)
        {
            t.AddSmallBlob(content, descriptor);
        }
        return descriptor;
    }

    /// <summary>Commits every target in order (registries first: the likeliest to fail; each target is complete when it commits).</summary>
    public async Task CommitAsync(Descriptor manifest, CancellationToken ct)
    {
        foreach (var t in targets)
        {
            await t.CommitAsync(manifest, ct).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var t in targets)
        {
            await t.DisposeAsync().ConfigureAwait(false);
        }
    }
}
