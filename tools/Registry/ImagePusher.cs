using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.IO;
using ModelCar.Oci;

namespace ModelCar.Registry;

/// <summary>One destination's outcome.</summary>
public sealed record PushResult(RegistryReference Destination, Digest Digest, int Present, int Mounted, int Uploaded, long UploadedBytes, bool ManifestUnchanged, long Requests)
{
    /// <summary>HOST/REPO@sha256:… (what stdout carries).</summary>
    public string PinnedReference => $"{Destination.Name}@{Digest}";
}

/// <summary>
/// Pushes one image (a manifest, or an index with its child manifests) from an <see cref="IImageSource"/>
/// to several destinations at once. Blobs: HEAD first (skip if present); at most <c>jobs</c> transfers
/// in flight overall. When two destinations share a registry host, a blob is uploaded once: the first
/// destination to need it uploads, the others wait for it and then mount it from that repository
/// (falling back to an upload if the registry answers the mount with 202). Manifests go last,
/// children before the index, each checked against the digest the registry reports; a tag that
/// already points at the same digest is left alone (a re-push is HEAD requests only).
/// </summary>
public sealed class ImagePusher
{
    private readonly IImageSource _source;
    private readonly Descriptor _root;
    private readonly UploadOptions _upload;
    private readonly SemaphoreSlim _slots;
    private readonly ILogger _logger;
    private readonly ProgressReporter? _progress;
    private readonly ConcurrentDictionary<(string Host, Digest Digest), TaskCompletionSource<string?>> _owners = new();
    private readonly List<(Descriptor Descriptor, byte[] Content)> _manifests = [];
    private readonly List<Descriptor> _blobs = [];

    public ImagePusher(IImageSource source, Descriptor root, UploadOptions upload, int jobs, ILogger logger, ProgressReporter? progress)
    {
        _source = source;
        _root = root;
        _upload = upload;
        _slots = new SemaphoreSlim(jobs, jobs);
        _logger = logger;
        _progress = progress;
        Walk(root, new HashSet<Digest>());
    }

    public IReadOnlyList<Descriptor> Blobs => _blobs;

    /// <summary>
    /// Tells the pusher that <paramref name="repository"/> on <paramref name="host"/> already holds the
    /// blob (oci-pack streamed it there before the push): the other destinations on that host mount
    /// it from there instead of uploading it again. Call before <see cref="PushAsync"/>.
    /// </summary>
    public void AddKnownLocation(string host, Digest digest, string repository)
    {
        var known = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        known.SetResult(repository);
        _owners[(host, digest)] = known;
    }

    /// <summary>
    /// Where chunked sessions are recorded so a later run can resume them (null, the default: no
    /// resume across runs). Set before the push starts, once <see cref="HasChunkedBlobs"/> says it is needed.
    /// </summary>
    public UploadStateStore? State { get; set; }

    /// <summary>True when some blob goes up in chunks: only chunked sessions can be resumed by a later run.</summary>
    public bool HasChunkedBlobs => _blobs.Any(b => _upload.ChunkSizeFor(b.Size) is not null);

    public IReadOnlyList<(Descriptor Descriptor, byte[] Content)> Manifests => _manifests;

    public long TotalBlobBytes => _blobs.Sum(b => b.Size);

    /// <summary>Reads the manifests (verified) and lists blobs; children before parents.</summary>
    private void Walk(Descriptor node, HashSet<Digest> seenBlobs)
    {
        if (!MediaTypes.IsManifestOrIndex(node.MediaType))
        {
            throw new RegistryException($"{_source.Description}: {node.Digest} has media type '{node.MediaType}', not an image manifest or index");
        }
        if (_manifests.Any(m => m.Descriptor.Digest == node.Digest))
        {
            return;
        }
        var content = _source.ReadSmallBlob(node);
        if (MediaTypes.IsIndex(node.MediaType))
        {
            var index = OciJson.Deserialize(content, OciJson.Index, $"{_source.Description}: index {node.Digest}");
            foreach (var child in index.Manifests)
            {
                Walk(child, seenBlobs);
            }
        }
        else
        {
            var manifest = OciJson.Deserialize(content, OciJson.Manifest, $"{_source.Description}: manifest {node.Digest}");
            foreach (var blob in manifest.Layers.Prepend(manifest.Config))
            {
                if (seenBlobs.Add(blob.Digest))
                {
                    _blobs.Add(blob);
                }
            }
        }
        _manifests.Add((node, content));
    }

    /// <summary>Fails early, before any upload, if a blob is missing from the source or has the wrong size.</summary>
    public void CheckSource()
    {
        foreach (var blob in _blobs)
        {
            using var stream = _source.OpenBlob(blob);
            if (stream.CanSeek && stream.Length != blob.Size)
            {
                throw new DigestMismatchException($"{_source.Description}: blob {blob.Digest} is {stream.Length} bytes where its descriptor states {blob.Size}");
            }
        }
    }

    public async Task<IReadOnlyList<PushResult>> PushAsync(IReadOnlyList<(RegistryReference Reference, RegistryClient Client)> destinations, CancellationToken ct)
    {
        using var failFast = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var tasks = destinations.Select(d => PushOneAsync(d.Reference, d.Client, failFast)).ToList();
        try
        {
            return await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch
        {
            // report the first real failure, not a cancellation it caused in a sibling
            var first = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault(e => e is not OperationCanceledException);
            if (first is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
            }
            throw;
        }
    }

    private async Task<PushResult> PushOneAsync(RegistryReference destination, RegistryClient client, CancellationTokenSource failFast)
    {
        var ct = failFast.Token;
        try
        {
            if (destination.Digest is { } wanted && !wanted.Matches(_root.Digest))
            {
                throw new RegistryInputException($"destination docker://{destination}: the image's digest is {_root.Digest}, not {wanted}");
            }
            await client.PingAsync(ct).ConfigureAwait(false);
            var repository = new RegistryRepository(client, destination.Repository);
            var stats = new Counters();
            await WhenAllPreferFailures(_blobs.Select(async b =>
            {
                try
                {
                    await EnsureBlobAsync(repository, b, stats, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    await failFast.CancelAsync().ConfigureAwait(false); // stop the other blobs at once (no storm after a 401)
                    throw;
                }
            }).ToList()).ConfigureAwait(false);

            bool unchanged = false;
            foreach (var (descriptor, content) in _manifests)
            {
                bool isRoot = descriptor.Digest == _root.Digest;
                string reference = isRoot ? destination.Tag ?? destination.Digest?.ToString() ?? "latest" : descriptor.Digest.ToString();
                var existing = await repository.ManifestDigestAsync(reference, ct).ConfigureAwait(false);
                if (existing is { } e && e.Matches(descriptor.Digest))
                {
                    unchanged |= isRoot;
                    continue;
                }
                await repository.PutManifestAsync(reference, descriptor.MediaType, content, ct).ConfigureAwait(false);
            }
            await VerifyAsync(repository, destination, ct).ConfigureAwait(false);
            var result = new PushResult(destination, _root.Digest, stats.Present, stats.Mounted, stats.Uploaded, Interlocked.Read(ref stats.UploadedBytes), unchanged, client.RequestCount);
            _logger.LogInformation("{Destination}: {Present} blobs already present, {Mounted} mounted, {Uploaded} uploaded ({Bytes}); manifest {Manifest}; {Requests} requests",
                destination.Name, result.Present, result.Mounted, result.Uploaded, SizeParser.Format(result.UploadedBytes),
                unchanged ? "unchanged" : "pushed", result.Requests);
            return result;
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await failFast.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Never claim what was not checked: the root manifest (and its children) by digest, and the tag, must be
    /// served with exactly the pushed bytes (a registry that answered 201 without storing fails here).
    /// </summary>
    private async Task VerifyAsync(RegistryRepository repository, RegistryReference destination, CancellationToken ct)
    {
        var where = $"docker://{destination}";
        foreach (var (descriptor, content) in _manifests)
        {
            await repository.VerifyManifestAsync(where, descriptor.Digest.ToString(), descriptor, content, ct).ConfigureAwait(false);
        }
        var rootContent = _manifests.First(m => m.Descriptor.Digest == _root.Digest).Content;
        if (destination.Digest is null)
        {
            await repository.VerifyManifestAsync(where, destination.Tag ?? "latest", _root, rootContent, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Awaits all tasks; on failure throws the first real error rather than a cancellation it caused.</summary>
    private static async Task WhenAllPreferFailures(IReadOnlyList<Task> tasks)
    {
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch
        {
            var first = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault(e => e is not OperationCanceledException);
            if (first is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
            }
            throw;
        }
    }

    private async Task EnsureBlobAsync(RegistryRepository repository, Descriptor blob, Counters stats, CancellationToken ct)
    {
        var host = repository.Client.Registry;
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (await repository.HasBlobAsync(blob.Digest, blob.Size, ct).ConfigureAwait(false))
            {
                await BlobUploader.DiscardRecordAsync(repository, State, blob.Digest, _logger).ConfigureAwait(false);
                Interlocked.Increment(ref stats.Present);
                _logger.LogDebug("{Repo}: blob {Digest} already present", repository.Name, blob.Digest);
                return;
            }
        }
        finally
        {
            _slots.Release();
        }

        var mine = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var owner = _owners.GetOrAdd((host, blob.Digest), mine);
        UploadSession? session = null;
        if (owner != mine)
        {
            // another destination on this host uploads it: wait (holding no slot), then mount
            var from = await owner.Task.WaitAsync(ct).ConfigureAwait(false);
            if (from is not null)
            {
                await _slots.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    // "it is there" only counts when a HEAD shows the blob (right size and digest)
                    if (from == repository.Name)
                    {
                        if (await repository.HasBlobAsync(blob.Digest, blob.Size, ct).ConfigureAwait(false))
                        {
                            Interlocked.Increment(ref stats.Present);
                            return;
                        }
                        from = null;
                    }
                    var mount = from is null ? new MountResult(false, null) : await repository.MountAsync(blob.Digest, from, ct).ConfigureAwait(false);
                    if (mount.Mounted && !await repository.HasBlobAsync(blob.Digest, blob.Size, ct).ConfigureAwait(false))
                    {
                        _logger.LogWarning("{Repo}: the registry answered the mount of {Digest} from {From} with 201 but does not serve it; uploading", repository.Name, Short(blob.Digest), from);
                        mount = new MountResult(false, null);
                    }
                    if (mount.Mounted)
                    {
                        Interlocked.Increment(ref stats.Mounted);
                        _logger.LogInformation("{Repo}: blob {Digest} mounted from {From}", repository.Name, Short(blob.Digest), from);
                        return;
                    }
                    session = mount.Session;
                    if (session is not null)
                    {
                        _logger.LogDebug("{Repo}: mount of {Digest} from {From} refused (202); uploading", repository.Name, blob.Digest, from);
                    }
                }
                finally
                {
                    _slots.Release();
                }
            }
            await UploadAsync(repository, blob, session, stats, ct).ConfigureAwait(false);
            return;
        }
        try
        {
            await UploadAsync(repository, blob, null, stats, ct).ConfigureAwait(false);
            mine.SetResult(repository.Name);
        }
        catch
        {
            mine.TrySetResult(null);
            throw;
        }
    }

    private async Task UploadAsync(RegistryRepository repository, Descriptor blob, UploadSession? session, Counters stats, CancellationToken ct)
    {
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            _progress?.AddTotal(blob.Size);
            var clock = Stopwatch.StartNew();
            var uploader = new BlobUploader(repository, _upload, _logger, State);
            long reported = 0;
            await uploader.UploadAsync(blob,
                () => _source.OpenVerified(blob),
                offset => OpenAt(blob, offset),
                session,
                n =>
                {
                    Interlocked.Add(ref reported, n);
                    _progress?.Add(n);
                },
                ct).ConfigureAwait(false);
            Interlocked.Increment(ref stats.Uploaded);
            Interlocked.Add(ref stats.UploadedBytes, blob.Size);
            double seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
            _logger.LogInformation("{Repo}: blob {Digest} uploaded ({Size}) in {Seconds:0.0} s, {Rate:0.0} MB/s{Mode}", repository.Name, Short(blob.Digest),
                SizeParser.Format(blob.Size), seconds, blob.Size / seconds / 1e6, _upload.ChunkSizeFor(blob.Size) is { } c ? $", chunks of {SizeParser.Format(c)}" : string.Empty);
        }
        finally
        {
            _slots.Release();
        }
    }

    private Stream OpenAt(Descriptor blob, long offset)
    {
        var stream = _source.OpenBlob(blob);
        if (offset == 0)
        {
            return stream;
        }
        if (stream.CanSeek)
        {
            stream.Seek(offset, SeekOrigin.Begin);
            return stream;
        }
        var buffer = new byte[81920];
        long left = offset;
        while (left > 0)
        {
            int n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0)
            {
                throw new DigestMismatchException($"{_source.Description}: blob {blob.Digest} is shorter than {offset} bytes");
            }
            left -= n;
        }
        return stream;
    }

    private static string Short(Digest d) => d.ToString()[..19];

    private sealed class Counters
    {
        public int Present;
        public int Mounted;
        public int Uploaded;
        public long UploadedBytes;
    }
}
