using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.Logging;
using ModelCar.Oci;

namespace ModelCar.Registry;

/// <summary>How blobs are uploaded.</summary>
public sealed record UploadOptions
{
    /// <summary>Default threshold above which a blob goes chunked: 10 GiB, half of quay's 20G body limit.</summary>
    public const long DefaultChunkedThreshold = 10L << 30;

    /// <summary>Default chunk size for blobs over the threshold: 1 GiB.</summary>
    public const long DefaultChunkSize = 1L << 30;

    /// <summary>Set by --chunk-size: every blob larger than this is sent in PATCH chunks of this size.</summary>
    public long? ChunkSize { get; init; }

    public long ChunkedThreshold { get; init; } = DefaultChunkedThreshold;

    /// <summary>Attempts to recover one blob (cuts, 5xx, dead sessions) before giving up.</summary>
    public int MaxRecoveries { get; init; } = 5;

    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The one retry policy for a blob's recoveries (these counts and delays, the client's Retry-After cap).</summary>
    public RetryPolicy PolicyFor(HttpSettings settings, ILogger logger) => new(MaxRecoveries, RetryBaseDelay, settings.MaxRetryWait, logger);

    /// <summary>Chunk size for a blob, or null for a monolithic upload.</summary>
    public long? ChunkSizeFor(long blobSize) => ChunkSize is { } c
        ? (blobSize > c ? c : null)
        : (blobSize > ChunkedThreshold ? DefaultChunkSize : null);
}

/// <summary>
/// One destination of a blob push (registry-push, the registry outputs' commit): opens its
/// <see cref="RegistryBlobWriter"/> — POST, the bytes in one streamed PATCH body (or PATCH chunks with
/// Content-Range when <see cref="UploadOptions.ChunkSizeFor"/> asks for them), then PUT ?digest= with an empty
/// body — and keeps its chunked session across runs. <see cref="UploadAllAsync"/> feeds the writers of every
/// destination that needs the blob from ONE read of the source (<see cref="BlobFanOut"/>, the copy engine of
/// every output; go-containerregistry's remote.MultiWrite, oras' CopyAsync): read through the source's
/// verifying stream, so nothing is hashed twice and a source whose bytes do not match their digest fails
/// before any writer commits (no PUT ?digest= is sent). Recovery inside a blob (cuts, 5xx, 429, dead
/// sessions) is the writer's, under the one <see cref="RetryPolicy"/> (<see cref="UploadOptions.PolicyFor"/>).
/// <para>
/// Across runs: with an <see cref="UploadStateStore"/>, every chunked session is recorded (URL and
/// acknowledged offset); the next run asks the recorded URL for its Range and continues from the
/// registry's offset, or starts the blob afresh when the session is gone (404) or unusable. Destinations
/// that resume at different offsets still share one read: it starts at the lowest offset (byte 0, verified,
/// when any destination starts afresh) and each writer skips the bytes its session already holds; only
/// when every destination resumes is the source read raw from the lowest offset (the registry's PUT
/// ?digest= is then the check, as it always was for a resumed session). A session that cannot be resumed
/// (not chunked, or not recorded) is cancelled with DELETE when the upload fails or is cancelled
/// (SIGTERM/SIGINT), so it leaves nothing in the registry.
/// </para>
/// </summary>
public sealed class BlobUploader(RegistryRepository repository, UploadOptions options, ILogger logger, UploadStateStore? state = null)
{
    /// <summary>
    /// A small in-memory blob (a signature layer, a bundle, an empty config) into <paramref name="target"/> unless a
    /// HEAD already finds it: the same upload as every other blob (one implementation of the wire requests and
    /// their recovery), with the default options.
    /// </summary>
    public static async Task EnsureSmallBlobAsync(RegistryRepository target, Descriptor descriptor, byte[] content, ILogger log, CancellationToken ct)
    {
        if (await target.BlobExistsAsync(descriptor.Digest, ct).ConfigureAwait(false))
        {
            return;
        }
        var uploader = new BlobUploader(target, new UploadOptions(), log);
        await uploader.UploadAsync(descriptor, () => new MemoryStream(content, writable: false), offset => new MemoryStream(content, (int)offset, content.Length - (int)offset, writable: false),
            null, _ => { }, ct).ConfigureAwait(false);
    }

    private readonly BlobUploadOperations _uploads = new(repository, logger);

    /// <summary>Opens the source at an offset (the raw, unverified bytes from there on).</summary>
    public delegate Stream OpenAt(long offset);

    public RegistryRepository Repository => repository;

    /// <summary>One destination of <see cref="UploadAllAsync"/>: its uploader, the session a refused mount started
    /// (or null), and its progress (bytes handed to its writer; a resumed session's bytes count at once).</summary>
    public readonly record struct Destination(BlobUploader Uploader, UploadSession? Session, Action<long> Progress);

    /// <summary>Uploads <paramref name="blob"/> to this repository alone (<see cref="UploadAllAsync"/> with one destination).</summary>
    public Task UploadAsync(Descriptor blob, Func<Stream> openVerified, OpenAt openAt, UploadSession? session, Action<long> progress, CancellationToken ct) =>
        UploadAllAsync(blob, openVerified, openAt, [new Destination(this, session, progress)], ct);

    /// <summary>
    /// Uploads <paramref name="blob"/> to every destination from one read of the source: <paramref name="openVerified"/>
    /// (which throws before its end when the bytes do not match the blob's size and digest) from byte 0, or
    /// <paramref name="openAt"/> from the lowest resumed offset; the writers re-read from <paramref name="openAt"/> only
    /// the bytes a failure lost. Every writer commits (PUT ?digest=) only after the last byte was read and verified;
    /// on any failure every writer is abandoned. A failure of one destination fails the blob for all of them.
    /// </summary>
    public static async Task UploadAllAsync(Descriptor blob, Func<Stream> openVerified, OpenAt openAt, IReadOnlyList<Destination> destinations, CancellationToken ct)
    {
        var source = new SourceBlob(blob.Size, openAt);
        var opening = destinations.Select(d => d.Uploader.OpenWriterAsync(blob, source, d.Session, ct)).ToList();
        try
        {
            await Task.WhenAll(opening).ConfigureAwait(false);
        }
        catch
        {
            foreach (var t in opening.Where(t => t.IsCompletedSuccessfully))
            {
                await t.Result.Writer.DisposeAsync().ConfigureAwait(false);
            }
            throw;
        }
        var opened = opening.Select(t => t.Result).ToList();
        long start = opened.Min(o => o.ResumeAt);
        var writers = new IBlobWriter[opened.Count];
        for (int i = 0; i < opened.Count; i++)
        {
            destinations[i].Progress(opened[i].ResumeAt);
            writers[i] = new Feed(opened[i].Writer, opened[i].ResumeAt - start, destinations[i].Progress);
        }
        Func<Stream> open = start == 0 ? openVerified
            : start == blob.Size ? () => Stream.Null // every session holds every byte: only the PUT is missing
            : () => openAt(start);
        await BlobFanOut.CopyAsync(open, blob.Size - start, writers, What(blob.Digest), ct, known: blob.Digest).ConfigureAwait(false);
        foreach (var d in destinations)
        {
            d.Uploader.Completed(blob);
        }
    }

    /// <summary>This destination's writer: a recorded session of an earlier run (chunked blobs) is resumed at the registry's offset.</summary>
    private async Task<(RegistryBlobWriter Writer, long ResumeAt)> OpenWriterAsync(Descriptor blob, IRereadableBlob source, UploadSession? session, CancellationToken ct)
    {
        bool chunked = options.ChunkSizeFor(blob.Size) is not null;
        long offset = 0;
        if (chunked && session is null && await ResumeRecordedAsync(blob, ct).ConfigureAwait(false) is { } resumed)
        {
            (session, offset) = resumed;
        }
        var target = $"blob upload to {repository.Client.Registry}/{repository.Name}";
        var writer = await RegistryBlobWriter.OpenAsync(_uploads, repository.Client.Settings, target, source, options, logger, ct, session,
            progress: null, What(blob.Digest), resumeAt: offset, record: chunked ? (s, stored) => Record(blob, s, stored) : null).ConfigureAwait(false);
        return (writer, offset);
    }

    /// <summary>Records the chunked session and its acknowledged offset; false without a state store or when it cannot be saved.</summary>
    private bool Record(Descriptor blob, UploadSession session, long offset) =>
        state is not null && state.Save(new UploadRecord
        {
            Registry = repository.Client.Registry,
            Repository = repository.Name,
            Digest = blob.Digest.ToString(),
            Size = blob.Size,
            Location = session.Location.AbsoluteUri,
            Offset = offset,
            MinChunkLength = session.MinChunkLength,
            Updated = DateTimeOffset.UtcNow,
        });

    private void Completed(Descriptor blob)
    {
        state?.Remove(repository.Client.Registry, repository.Name, blob.Digest);
    }

    private static string What(Digest digest) => "blob " + digest.Encoded[..12];

    /// <summary>
    /// A blob that is already in the registry needs no recorded session: cancel it (if any) and drop
    /// its record.
    /// </summary>
    public static async Task DiscardRecordAsync(RegistryRepository repository, UploadStateStore? state, Digest digest, ILogger logger)
    {
        if (state?.Find(repository.Client.Registry, repository.Name, digest) is not { } record)
        {
            return;
        }
        state.Remove(repository.Client.Registry, repository.Name, digest);
        if (Uri.TryCreate(record.Location, UriKind.Absolute, out var location))
        {
            await new BlobUploadOperations(repository, logger).CancelAsync(new UploadSession(location, record.MinChunkLength), What(digest)).ConfigureAwait(false);
        }
    }

    /// <summary>The recorded session of an earlier run, asked for its offset; null when there is none or it cannot be used.</summary>
    private async Task<(UploadSession Session, long Offset)?> ResumeRecordedAsync(Descriptor blob, CancellationToken ct)
    {
        if (state?.Find(repository.Client.Registry, repository.Name, blob.Digest) is not { } record)
        {
            return null;
        }
        string why;
        if (record.Size == blob.Size && Uri.TryCreate(record.Location, UriKind.Absolute, out var location))
        {
            try
            {
                var status = await _uploads.GetStatusAsync(new UploadSession(location, record.MinChunkLength), ct).ConfigureAwait(false);
                if (status is { } s && s.Offset <= blob.Size)
                {
                    logger.LogInformation("blob {Digest}: resuming the upload of an earlier run at byte {Offset} of {Size} (the registry's offset; the record said {Recorded})",
                        blob.Digest.Encoded[..12], s.Offset, blob.Size, record.Offset);
                    return s;
                }
                why = status is null ? "the registry no longer has it" : $"the registry reports {status.Value.Offset} bytes for a {blob.Size}-byte blob";
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                why = ErrorText.Describe(e);
            }
        }
        else
        {
            why = "the record does not fit this blob";
        }
        logger.LogWarning("blob {Digest}: the upload session of an earlier run cannot be resumed ({Why}); starting the blob with a new session", blob.Digest.Encoded[..12], why);
        state.Remove(repository.Client.Registry, repository.Name, blob.Digest);
        return null;
    }

    /// <summary>The source as the writer's re-readable blob (raw bytes from an offset).</summary>
    private sealed class SourceBlob(long size, OpenAt openAt) : IRereadableBlob
    {
        public long Size => size;

        public Stream OpenAt(long offset) => openAt(offset);
    }

    /// <summary>
    /// One destination's side of the fan-out: drops the first <c>skip</c> bytes (its session already holds them: it
    /// resumes further on than the read starts) and counts what it hands on.
    /// </summary>
    private sealed class Feed(IBlobWriter inner, long skip, Action<long> progress) : IBlobWriter
    {
        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            if (skip > 0)
            {
                int n = (int)Math.Min(skip, data.Length);
                skip -= n;
                data = data[n..];
                if (data.IsEmpty)
                {
                    return ValueTask.CompletedTask;
                }
            }
            progress(data.Length);
            return inner.WriteAsync(data, ct);
        }

        public Task CommitAsync(Digest digest, CancellationToken ct) => inner.CommitAsync(digest, ct);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
