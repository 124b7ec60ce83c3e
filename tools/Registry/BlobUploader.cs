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
    /// <summary>How long a best-effort DELETE of a session may take (the process ends 2 s after a signal).</summary>
    public static readonly TimeSpan CancelTimeout = TimeSpan.FromMilliseconds(1500);

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
            await CancelSessionAsync(repository, open, blob.Digest, logger).ConfigureAwait(false);
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

    /// <summary>Best-effort <c>DELETE</c> of an upload session, bounded by <see cref="CancelTimeout"/>; never throws.</summary>
    public static Task CancelSessionAsync(RegistryRepository repository, UploadSession session, Digest digest, ILogger logger) =>
        CancelSessionAsync(repository, session, "blob " + digest.Encoded[..12], logger);

    /// <summary>Best-effort <c>DELETE</c> of an upload session (<paramref name="what"/> names it in the log); never throws.</summary>
    public static async Task CancelSessionAsync(RegistryRepository repository, UploadSession session, string what, ILogger logger)
    {
        using var timeout = new CancellationTokenSource(CancelTimeout);
        try
        {
            using var response = await repository.Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, session.Location), repository.PushScope, timeout.Token, retry: false)
                .ConfigureAwait(false);
            logger.LogInformation("{What}: upload session cancelled (DELETE: {Status})", what, (int)response.StatusCode);
        }
        catch (Exception e)
        {
            logger.LogDebug("{What}: could not cancel the upload session: {Error}", what, ErrorText.Describe(e));
        }
    }

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
                var status = await StatusAsync(new UploadSession(location, record.MinChunkLength), ct).ConfigureAwait(false);
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
        var retries = options.PolicyFor(repository.Client.Settings, logger).Begin("blob " + blob.Digest.Encoded[..12]);
        while (true)
        {
            session = Opened(session ?? await repository.StartUploadAsync(ct).ConfigureAwait(false));
            var url = RegistryClient.WithQuery(session.Location, "digest", blob.Digest.ToString());
            long sent = 0;
            HttpResponseMessage? response = null;
            Exception? error = null;
            TimeSpan? serverDelay = null;
            try
            {
                response = await repository.Client.SendAsync(() =>
                {
                    sent = 0;
                    var content = new StreamingContent(() => new EndCheckingStream(openVerified(), blob.Size), blob.Size, n => { sent += n; progress(n); },
                        repository.Client.Settings.StallTimeout);
                    content.Headers.ContentType = RegistryClient.OctetStream;
                    return new HttpRequestMessage(HttpMethod.Put, url) { Content = content };
                }, repository.PushScope, ct, retry: false).ConfigureAwait(false);
            }
            catch (Exception e) when (IsRecoverable(e, ct))
            {
                error = e;
            }
            catch (HttpRequestException e) when (PermanentCause(e) is { } cause)
            {
                throw cause;
            }
            if (response is not null)
            {
                var (outcome, failure, delay) = await UploadAnswers.ClassifyAsync(response, patch: false, repository.Client.Settings.MaxRetryWait, ct).ConfigureAwait(false);
                if (outcome == UploadOutcome.Stored)
                {
                    using (response)
                    {
                        _open = null;
                        RegistryRepository.CheckReportedDigest(response, blob.Digest, $"PUT blob {blob.Digest}");
                    }
                    return;
                }
                if (outcome == UploadOutcome.Refused)
                {
                    throw await RegistryErrors.ToExceptionAsync(response, ct, HintFor(response)).ConfigureAwait(false);
                }
                // a dead session or a temporary failure: this blob starts again with a new session
                error = failure;
                serverDelay = delay;
                response.Dispose();
            }
            progress(-sent);
            if (!retries.TryFail())
            {
                throw new RegistryException($"upload of blob {blob.Digest} failed {retries.Failures} times; last error: {ErrorText.Describe(error!)}", error);
            }
            await retries.WaitAsync($"upload failed ({ErrorText.Describe(error!)})", "starting it again with a new session", serverDelay, ct).ConfigureAwait(false);
            _open = null;
            await CancelSessionAsync(repository, session, blob.Digest, logger).ConfigureAwait(false); // partial bytes of the failed PUT
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
        await using var writer = await RegistryBlobWriter.OpenAsync(repository, new SourceBlob(blob.Size, openAt), options, logger, ct, session, progress,
            "blob " + blob.Digest.Encoded[..12], resumeAt: offset, record: (s, stored) => Record(blob, s, stored)).ConfigureAwait(false);
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

    /// <summary>GET the upload URL: the offset to resume from (end of Range + 1), or null if the session is gone.</summary>
    private Task<(UploadSession Session, long Offset)?> StatusAsync(UploadSession session, CancellationToken ct) => StatusAsync(repository, session, ct);

    /// <summary>GET the upload URL: the offset to resume from (end of Range + 1), or null if the session is gone.</summary>
    internal static async Task<(UploadSession Session, long Offset)?> StatusAsync(RegistryRepository repository, UploadSession session, CancellationToken ct)
    {
        using var response = await repository.Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Get, session.Location), repository.PushScope, ct).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.OK or HttpStatusCode.Accepted)
        {
            var next = response.Headers.Location is not null ? session with { Location = RegistryClient.ResolveLocation(session.Location, response) } : session;
            return (next, StoredBytes(response) ?? 0);
        }
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest)
        {
            return null;
        }
        throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// How many bytes an upload session holds according to its <c>Range</c> header, or null without one.
    /// <c>0-N</c> is N + 1 bytes, except <c>0-0</c>: CNCF distribution answers an empty session with
    /// <c>0-0</c> (after 2 bytes <c>0-1</c>), so <c>0-0</c> is read as 0 bytes. That is unambiguous
    /// because no chunk is 1 byte long (the chunk size is at least 2).
    /// </summary>
    public static long? StoredBytes(HttpResponseMessage response) => RangeEnd(response) is { } end ? (end == 0 ? 0 : end + 1) : null;

    /// <summary>The inclusive end of a <c>Range: 0-N</c> header (some registries write "bytes=0-N").</summary>
    public static long? RangeEnd(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Range", out var values))
        {
            return null;
        }
        var v = values.First().Trim();
        if (v.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase))
        {
            v = v[6..];
        }
        int dash = v.IndexOf('-');
        return dash > 0 && long.TryParse(v[(dash + 1)..], out long end) && long.TryParse(v[..dash], out long start) && start == 0 ? end : null;
    }

    /// <summary>404 with BLOB_UPLOAD_INVALID / BLOB_UPLOAD_UNKNOWN (or no code): the registry dropped the session.</summary>
    internal static async Task<bool> IsDeadSessionAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.StatusCode != HttpStatusCode.NotFound)
        {
            return false;
        }
        await response.Content.LoadIntoBufferAsync(ct).ConfigureAwait(false);
        var code = ServerCode(response);
        return code is null or "BLOB_UPLOAD_INVALID" or "BLOB_UPLOAD_UNKNOWN";
    }

    internal static string? ServerCode(HttpResponseMessage response)
    {
        try
        {
            var body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            return RegistryErrors.Parse(body)?.Code;
        }
        catch (Exception e) when (e is IOException or HttpRequestException or InvalidOperationException)
        {
            return null;
        }
    }

    private static string? HintFor(HttpResponseMessage response) => response.StatusCode == HttpStatusCode.RequestEntityTooLarge
        ? "the registry refuses a body this large"
        : null;


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
