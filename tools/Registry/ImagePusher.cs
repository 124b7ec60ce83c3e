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
/// to several destinations at once. Blobs: HEAD first on every destination (skip where present); a blob
/// is read from the source ONCE for every destination that needs its bytes (<see cref="BlobUploader.UploadAllAsync"/>:
/// one <see cref="RegistryBlobWriter"/> per destination, fed by <see cref="BlobFanOut"/>); at most <c>jobs</c>
/// blobs in flight (HEADs, mounts and fan-outs) overall. When two destinations share a registry host, a
/// blob is uploaded once: the first destination to need it uploads, the others then mount it from that
/// repository (falling back to an upload if the registry answers the mount with 202, or with a 201 it does
/// not serve). The first real failure stops everything. Manifests go last, children before the index, each
/// checked against the digest the registry reports; a tag that already points at the same digest is left
/// alone (a re-push is HEAD requests only).
/// </summary>
public sealed class ImagePusher
{
    private readonly IImageSource _source;
    private readonly Descriptor _root;
    private readonly UploadOptions _upload;
    private readonly SemaphoreSlim _slots;
    private readonly ILogger _logger;
    private readonly ProgressReporter? _progress;
    private readonly ConcurrentDictionary<(string Host, Digest Digest), string> _known = new();
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
        _known[(host, digest)] = repository;
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
        var token = failFast.Token;
        var targets = destinations.Select(d => new Target(d.Reference, d.Client, new RegistryRepository(d.Client, d.Reference.Repository))).ToList();
        await AllOrFirstFailure(targets.Select(t => PrepareAsync(t, token)), failFast).ConfigureAwait(false);
        await AllOrFirstFailure(_blobs.Select(b => PushBlobAsync(b, targets, token)), failFast).ConfigureAwait(false);
        var finishing = targets.Select(t => FinishAsync(t, token)).ToList();
        await AllOrFirstFailure(finishing, failFast).ConfigureAwait(false);
        return finishing.Select(t => t.Result).ToList();
    }

    /// <summary>One destination: where it goes, its repository and its counters.</summary>
    private sealed record Target(RegistryReference Reference, RegistryClient Client, RegistryRepository Repository)
    {
        public Counters Stats { get; } = new();
    }

    private async Task PrepareAsync(Target target, CancellationToken ct)
    {
        if (target.Reference.Digest is { } wanted && !wanted.Matches(_root.Digest))
        {
            throw new RegistryInputException($"destination docker://{target.Reference}: the image's digest is {_root.Digest}, not {wanted}");
        }
        await target.Client.PingAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The manifests of one destination (after every blob of every destination), verified; its result.</summary>
    private async Task<PushResult> FinishAsync(Target target, CancellationToken ct)
    {
        var (destination, client, repository, stats) = (target.Reference, target.Client, target.Repository, target.Stats);
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

    /// <summary>
    /// Awaits all tasks; the first real failure cancels the others at once (no storm after a 401) and is what is
    /// thrown, rather than a cancellation it caused.
    /// </summary>
    private static async Task AllOrFirstFailure(IEnumerable<Task> work, CancellationTokenSource failFast)
    {
        var ct = failFast.Token;
        var tasks = work.Select(async t =>
        {
            try
            {
                await t.ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                await failFast.CancelAsync().ConfigureAwait(false);
                throw;
            }
        }).ToList();
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

    /// <summary>
    /// One blob to every destination: HEAD each; per registry host, a host that holds it already (oci-pack's
    /// one pass) mounts it, otherwise the first destination needing it uploads; every upload of the blob shares
    /// one read of the source; then the other destinations of each host mount it from the uploader's repository.
    /// A mount the registry refuses (202, or 201 without serving the blob) becomes an upload (one more read,
    /// shared by every such destination).
    /// </summary>
    private async Task PushBlobAsync(Descriptor blob, IReadOnlyList<Target> targets, CancellationToken ct)
    {
        var present = await Task.WhenAll(targets.Select(t => PresentAsync(t, blob, ct))).ConfigureAwait(false);
        var missing = targets.Where((_, i) => !present[i]).ToList();
        var uploads = new List<(Target Target, UploadSession? Session)>();
        var mountNow = new List<(Target Target, string From)>();
        var mountAfter = new List<(Target Target, string From)>();
        foreach (var host in missing.GroupBy(t => t.Client.Registry))
        {
            if (_known.TryGetValue((host.Key, blob.Digest), out var from))
            {
                mountNow.AddRange(host.Select(t => (t, from)));
            }
            else
            {
                var first = host.First();
                uploads.Add((first, null));
                mountAfter.AddRange(host.Skip(1).Select(t => (t, first.Repository.Name)));
            }
        }
        uploads.AddRange(await MountAllAsync(mountNow, blob, ct).ConfigureAwait(false));
        await UploadAsync(blob, uploads, ct).ConfigureAwait(false);
        await UploadAsync(blob, await MountAllAsync(mountAfter, blob, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
    }

    /// <summary>HEAD: "it is there" only counts when the registry serves it with the right size and digest.</summary>
    private async Task<bool> PresentAsync(Target target, Descriptor blob, CancellationToken ct)
    {
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!await target.Repository.HasBlobAsync(blob.Digest, blob.Size, ct).ConfigureAwait(false))
            {
                return false;
            }
            await BlobUploader.DiscardRecordAsync(target.Repository, State, blob.Digest, _logger).ConfigureAwait(false);
            Interlocked.Increment(ref target.Stats.Present);
            _logger.LogDebug("{Repo}: blob {Digest} already present", target.Repository.Name, blob.Digest);
            return true;
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>Mounts; returns the destinations that must upload after all (with the session a 202 started, if any).</summary>
    private async Task<IReadOnlyList<(Target Target, UploadSession? Session)>> MountAllAsync(IReadOnlyList<(Target Target, string From)> mounts, Descriptor blob, CancellationToken ct)
    {
        var results = await Task.WhenAll(mounts.Select(m => MountAsync(m.Target, blob, m.From, ct))).ConfigureAwait(false);
        return mounts.Select((m, i) => (m.Target, results[i])).Where(r => r.Item2.Upload).Select(r => (r.Target, r.Item2.Session)).ToList();
    }

    private async Task<(bool Upload, UploadSession? Session)> MountAsync(Target target, Descriptor blob, string from, CancellationToken ct)
    {
        var (repository, stats) = (target.Repository, target.Stats);
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (from == repository.Name)
            {
                if (await repository.HasBlobAsync(blob.Digest, blob.Size, ct).ConfigureAwait(false))
                {
                    Interlocked.Increment(ref stats.Present);
                    return (false, null);
                }
                return (true, null);
            }
            var mount = await repository.MountAsync(blob.Digest, from, ct).ConfigureAwait(false);
            if (mount.Mounted && !await repository.HasBlobAsync(blob.Digest, blob.Size, ct).ConfigureAwait(false))
            {
                _logger.LogWarning("{Repo}: the registry answered the mount of {Digest} from {From} with 201 but does not serve it; uploading", repository.Name, Short(blob.Digest), from);
                mount = new MountResult(false, null);
            }
            if (mount.Mounted)
            {
                Interlocked.Increment(ref stats.Mounted);
                _logger.LogInformation("{Repo}: blob {Digest} mounted from {From}", repository.Name, Short(blob.Digest), from);
                return (false, null);
            }
            if (mount.Session is not null)
            {
                _logger.LogDebug("{Repo}: mount of {Digest} from {From} refused (202); uploading", repository.Name, blob.Digest, from);
            }
            return (true, mount.Session);
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>One read of the source for every destination in <paramref name="uploads"/> (one <c>jobs</c> slot).</summary>
    private async Task UploadAsync(Descriptor blob, IReadOnlyList<(Target Target, UploadSession? Session)> uploads, CancellationToken ct)
    {
        if (uploads.Count == 0)
        {
            return;
        }
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var clock = Stopwatch.StartNew();
            var destinations = uploads.Select(u =>
            {
                _progress?.AddTotal(blob.Size);
                return new BlobUploader.Destination(new BlobUploader(u.Target.Repository, _upload, _logger, State), u.Session, n => _progress?.Add(n));
            }).ToList();
            await BlobUploader.UploadAllAsync(blob, () => _source.OpenVerified(blob), offset => OpenAt(blob, offset), destinations, ct).ConfigureAwait(false);
            double seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
            foreach (var (target, _) in uploads)
            {
                Interlocked.Increment(ref target.Stats.Uploaded);
                Interlocked.Add(ref target.Stats.UploadedBytes, blob.Size);
                _logger.LogInformation("{Repo}: blob {Digest} uploaded ({Size}) in {Seconds:0.0} s, {Rate:0.0} MB/s{Mode}", target.Repository.Name, Short(blob.Digest),
                    SizeParser.Format(blob.Size), seconds, blob.Size / seconds / 1e6, _upload.ChunkSizeFor(blob.Size) is { } c ? $", chunks of {SizeParser.Format(c)}" : string.Empty);
            }
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
