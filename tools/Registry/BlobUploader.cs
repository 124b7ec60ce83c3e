using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
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
/// Uploads one blob. Monolithic: POST, then PUT ?digest= with the streamed body (the source is
/// verified while it is read); a failed PUT starts the blob again with a new session. Chunked: a
/// <see cref="RegistryBlobWriter"/> fed from the source stream (PATCH with Content-Range per chunk,
/// at least OCI-Chunk-Min-Length, then PUT ?digest=). After a cut the upload URL is asked for its
/// Range and the upload continues from there (only the lost bytes are read again); when the registry
/// reports the session dead (404 BLOB_UPLOAD_INVALID / BLOB_UPLOAD_UNKNOWN, as distribution 2.8 does
/// after a PATCH was cut inside its body) the blob starts again with a new POST. Both paths count,
/// wait and log under the one <see cref="RetryPolicy"/> (<see cref="UploadOptions.PolicyFor"/>).
/// Across runs: with an <see cref="UploadStateStore"/>, every chunked session is recorded (URL and
/// acknowledged offset); the next run asks the recorded URL for its Range and continues from the
/// registry's offset, or starts the blob afresh when the session is gone (404) or unusable.
/// A session that cannot be resumed (monolithic, or not recorded) is cancelled with DELETE when
/// the upload fails or is cancelled (SIGTERM/SIGINT), so it leaves nothing in the registry.
/// </summary>
public sealed class BlobUploader(RegistryRepository repository, UploadOptions options, ILogger logger, UploadStateStore? state = null)
{
    /// <summary>
    /// A small in-memory blob (a signature layer, a bundle, an empty config) into <paramref name="target"/> unless a
    /// HEAD already finds it: one upload with the default options, verified like every other.
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

    /// <summary>How long a best-effort DELETE of a session may take (forwards to <see cref="BlobUploadOperations.CancelTimeout"/>).</summary>
    public static readonly TimeSpan CancelTimeout = BlobUploadOperations.CancelTimeout;

    private readonly BlobUploadOperations _uploads = new(repository, logger);

    /// <summary>Bytes read from the source at a time for the chunked path.</summary>
    private const int FeedBuffer = 1 << 20;

    private UploadSession? _open;   // the monolithic session bytes went to, until the blob is complete (the writer owns chunked sessions)

    /// <summary>Opens the source at an offset (the raw, unverified bytes from there on).</summary>
    public delegate Stream OpenAt(long offset);

    public async Task UploadAsync(Descriptor blob, Func<Stream> openVerified, OpenAt openAt, UploadSession? session, Action<long> progress, CancellationToken ct)
    {
        try
        {
            if (options.ChunkSizeFor(blob.Size) is not null)
            {
                await ChunkedAsync(blob, openAt, session, progress, ct).ConfigureAwait(false);
            }
            else
            {
                await MonolithicAsync(blob, openVerified, session, progress, ct).ConfigureAwait(false);
            }
        }
        catch (Exception) when (_open is { } open)
        {
            _open = null;
            await _uploads.CancelAsync(open, What(blob.Digest)).ConfigureAwait(false);
            throw;
        }
    }

    private UploadSession Opened(UploadSession session)
    {
        _open = session;
        return session;
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

    /// <summary>Best-effort <c>DELETE</c> of an upload session; never throws (forwards to <see cref="BlobUploadOperations.CancelAsync"/>).</summary>
    public static Task CancelSessionAsync(RegistryRepository repository, UploadSession session, Digest digest, ILogger logger) =>
        new BlobUploadOperations(repository, logger).CancelAsync(session, What(digest));

    /// <summary>Best-effort <c>DELETE</c> of an upload session (<paramref name="what"/> names it in the log); never throws
    /// (forwards to <see cref="BlobUploadOperations.CancelAsync"/>).</summary>
    public static Task CancelSessionAsync(RegistryRepository repository, UploadSession session, string what, ILogger logger) =>
        new BlobUploadOperations(repository, logger).CancelAsync(session, what);

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
            await CancelSessionAsync(repository, new UploadSession(location, record.MinChunkLength), digest, logger).ConfigureAwait(false);
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

    private async Task MonolithicAsync(Descriptor blob, Func<Stream> openVerified, UploadSession? session, Action<long> progress, CancellationToken ct)
    {
        var retries = options.PolicyFor(repository.Client.Settings, logger).Begin(What(blob.Digest));
        while (true)
        {
            session = Opened(session ?? await _uploads.StartAsync(ct).ConfigureAwait(false));
            long sent = 0;
            UploadAnswer? answer = null;
            Exception? error = null;
            try
            {
                answer = await _uploads.CompleteAsync(session, blob.Digest, () =>
                {
                    sent = 0;
                    var content = new StreamingContent(() => new EndCheckingStream(openVerified(), blob.Size), blob.Size, n => { sent += n; progress(n); },
                        repository.Client.Settings.StallTimeout);
                    content.Headers.ContentType = RegistryClient.OctetStream;
                    return content;
                }, null, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (IsRecoverable(e, ct))
            {
                error = e;
            }
            catch (HttpRequestException e) when (PermanentCause(e) is { } cause)
            {
                throw cause;
            }
            catch (DigestMismatchException)
            {
                _open = null; // the PUT completed the session (with other bytes): nothing to cancel
                throw;
            }
            if (answer is { Outcome: UploadOutcome.Stored })
            {
                _open = null;
                return;
            }
            if (answer is { Outcome: UploadOutcome.Refused })
            {
                throw answer.Error!;
            }
            // a dead session or a temporary failure: this blob starts again with a new session
            error ??= answer!.Error;
            progress(-sent);
            if (!retries.TryFail())
            {
                throw BlobUploadException.GaveUp($"upload of blob {blob.Digest} failed {retries.Failures} times", error!);
            }
            await retries.WaitAsync($"upload failed ({ErrorText.Describe(error!)})", "starting it again with a new session", answer?.Delay, ct).ConfigureAwait(false);
            _open = null;
            await _uploads.CancelAsync(session, What(blob.Digest)).ConfigureAwait(false); // partial bytes of the failed PUT
            session = null;
        }
    }

    /// <summary>
    /// The chunked path is <see cref="RegistryBlobWriter"/> fed from the source stream (one chunked-upload
    /// implementation for registry-push and oci-pack): the source is read once from the first byte the
    /// registry lacks; the writer re-reads from <paramref name="openAt"/> only the bytes a failure lost.
    /// A recorded session of an earlier run is resumed at the registry's offset, and every acknowledged
    /// offset is recorded, so a killed run continues next time.
    /// </summary>
    private async Task ChunkedAsync(Descriptor blob, OpenAt openAt, UploadSession? session, Action<long> progress, CancellationToken ct)
    {
        long offset = 0;
        if (session is null && await ResumeRecordedAsync(blob, ct).ConfigureAwait(false) is { } resumed)
        {
            (session, offset) = resumed;
        }
        var target = $"blob upload to {repository.Client.Registry}/{repository.Name}";
        await using var writer = await RegistryBlobWriter.OpenAsync(_uploads, repository.Client.Settings, target,
            new SourceBlob(blob.Size, openAt), options, logger, ct, session, progress, What(blob.Digest), resumeAt: offset,
            record: (s, stored) => Record(blob, s, stored)).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(FeedBuffer);
        Stream? source = null;
        try
        {
            for (long left = blob.Size - offset; left > 0;)
            {
                source ??= openAt(offset); // not opened when the session already holds every byte (only the PUT is missing)
                int n = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new BlobUploadException($"blob {blob.Digest}: the source ended {left} bytes before the blob's size ({blob.Size})", transient: false);
                }
                await writer.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                left -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (source is not null)
            {
                await source.DisposeAsync().ConfigureAwait(false);
            }
        }
        await writer.CommitAsync(blob.Digest, ct).ConfigureAwait(false);
        Completed(blob);
    }

    /// <summary>The source as the writer's re-readable blob (raw bytes from an offset).</summary>
    private sealed class SourceBlob(long size, BlobUploader.OpenAt openAt) : IRereadableBlob
    {
        public long Size => size;

        public Stream OpenAt(long offset) => openAt(offset);
    }

    /// <summary>Bytes an upload session holds by its Range header (forwards to <see cref="BlobUploadOperations.StoredBytes"/>).</summary>
    public static long? StoredBytes(HttpResponseMessage response) => BlobUploadOperations.StoredBytes(response);

    /// <summary>The inclusive end of a <c>Range: 0-N</c> header (forwards to <see cref="BlobUploadOperations.RangeEnd"/>).</summary>
    public static long? RangeEnd(HttpResponseMessage response) => BlobUploadOperations.RangeEnd(response);

    internal static bool IsRecoverable(Exception e, CancellationToken ct) =>
        !ct.IsCancellationRequested && PermanentCause(e) is null && HttpRetry.IsTransient(e, ct);

    /// <summary>A decided failure (<see cref="ModelCarException"/>: bad source data) inside an HTTP failure: that is the real error.</summary>
    public static ModelCarException? PermanentCause(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is ModelCarException te)
            {
                return te;
            }
        }
        return null;
    }

    /// <summary>Reads exactly <c>length</c> bytes, then one more (empty) read so a verifying stream checks its digest.</summary>
    private sealed class EndCheckingStream(Stream inner, long length) : ModelCar.Common.IO.ReadOnlyWrapperStream(inner)
    {
        private long _read;

        public override long Length => length;
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(Span<byte> buffer)
        {
            int n = Inner.Read(buffer);
            return After(n);
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = await Inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            return After(n);
        }

        private int After(int n)
        {
            _read += n;
            if (n > 0 && _read == length)
            {
                // end of the declared size: one empty read so the verifier checks size and digest now
                if (Inner.Read(Span<byte>.Empty) != 0)
                {
                    throw new InvalidOperationException("empty read returned data");
                }
            }
            return n;
        }

    }
}
