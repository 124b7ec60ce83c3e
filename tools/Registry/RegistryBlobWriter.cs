using System.Buffers;
using System.Net;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Oci;

namespace ModelCar.Registry;

/// <summary>
/// Uploads one blob whose digest is known only after its last byte (a layer generated and hashed
/// while it is sent; see go-containerregistry's stream.Layer + remote.Write): <c>POST</c> a session,
/// stream the pushed bytes into an open <c>PATCH</c> body (one body for the whole blob, or successive
/// <c>PATCH</c> chunks with <c>Content-Range</c> when <see cref="UploadOptions.ChunkSizeFor"/> asks for
/// them, at least <c>OCI-Chunk-Min-Length</c>), then <c>PUT ?digest=</c> with an empty body.
/// <para>
/// Memory: none of its own. The producer's buffer is handed over as it is: a request body writes it to the
/// socket straight from the producer's memory, and <see cref="WriteAsync"/> returns once every byte of it is in
/// a request body (the producer's next read overlaps that send; when the registry is slower than the producer,
/// <see cref="WriteAsync"/> waits: the slowest writer sets the pace). No copy: at 1 MiB buffers a copy into a
/// pipe cost ≈ 5% of oci-pack's CPU per registry (docs/benchmarks.md).
/// </para>
/// <para>
/// Recovery (at most <see cref="UploadOptions.MaxRecoveries"/> failures in a row, <see cref="RetryBudget"/>): after a cut, a
/// stall (<see cref="HttpSettings.StallTimeout"/>), a 5xx, 408 or 429 (Retry-After honoured within
/// <see cref="HttpSettings.MaxRetryWait"/>, the shared rule of <see cref="HttpRetry"/>) or a 416, the
/// session is asked for its <c>Range</c>; the next <c>PATCH</c> starts at the registry's offset, first
/// re-reading the bytes it lost from the <see cref="IRereadableBlob"/> (never the bytes it has), then
/// continuing with the pushed data. When the registry reports the session dead (404
/// BLOB_UPLOAD_INVALID/UNKNOWN, as CNCF distribution 2.8 does after a cut <c>PATCH</c>), this blob alone
/// starts again with a new session from byte 0, re-read from the blob. A 401 is answered by
/// <see cref="RegistryClient"/> (new handshake, credentials re-read) and the same <c>PATCH</c> goes again.
/// </para>
/// <para>
/// Disposing without <see cref="CommitAsync"/> cancels the session with <c>DELETE</c> (best effort,
/// <see cref="BlobUploadOperations.CancelTimeout"/>), so nothing stays in the registry, unless the owner recorded
/// the session for a later run (<see cref="OpenAsync"/>'s <c>record</c>: registry-push, whose digests are
/// known up front, keeps chunked sessions in its <see cref="UploadStateStore"/> and opens the writer with
/// <c>resumeAt</c> next time). oci-pack's one pass records nothing (the state file is keyed by digest,
/// unknown here until the end): a later run regenerates the blob.
/// </para>
/// <para>
/// The writer is also registry-push's upload (<see cref="ImagePusher"/> feeds one per destination from one read of
/// the source, <see cref="BlobFanOut"/>), so there is one upload implementation. Delays, attempt counts and retry
/// log lines come from the one <see cref="RetryPolicy"/>.
/// </para>
/// Not thread-safe: one producer calls <see cref="WriteAsync"/> in order, then <see cref="CommitAsync"/>
/// or <see cref="DisposeAsync"/>.
/// </summary>
public sealed class RegistryBlobWriter : IBlobWriter
{
    /// <summary>Most pushed bytes a writer holds at a time: the one buffer handed to <see cref="WriteAsync"/> (the fan-out's).</summary>
    public const int BufferLimit = 1 << 20;

    private const int SliceSize = 1 << 20;

    private readonly IBlobUploadOperations _uploads;
    private readonly HttpSettings _settings;
    private readonly string _target;  // "blob upload to HOST/REPO": names a session that cannot be started
    private readonly IRereadableBlob _blob;
    private readonly ILogger _logger;
    private readonly Action<long>? _progress;
    private readonly string _what;
    private readonly long? _chunkSize;
    private readonly CancellationTokenSource _life;
    private readonly object _gate = new();
    private ReadOnlyMemory<byte> _pending; // handed over by WriteAsync and not yet in a request body; guarded by _gate
    private TaskCompletionSource _changed = NewSignal(); // completed (and replaced) whenever _pending changes; guarded by _gate
    private readonly SemaphoreSlim _reader = new(1, 1); // one request body reads the pipe at a time
    private UploadSession _session;
    private Attempt? _attempt;
    private long _position;     // bytes pushed by the producer
    private long _consumed;     // bytes written into some request body (= where _pending starts); changed under _gate
    private long _stored;       // bytes the registry acknowledged
    private long _reported;     // bytes reported to progress
    private readonly RetryBudget _retries;
    private readonly Func<UploadSession, long, bool>? _record;
    private bool _recorded;     // the owner recorded the session for a later run: an abandoned writer keeps it
    private long _lastFailureOffset = -1;
    private bool _writerCompleted;
    private bool _committed;
    private bool _broken;
    private bool _disposed;
    private long _bodyBytes;
    private long _rereadBytes;

    private RegistryBlobWriter(IBlobUploadOperations uploads, HttpSettings settings, string target, IRereadableBlob blob, UploadSession session,
        UploadOptions options, ILogger logger, Action<long>? progress, string? what, long resumeAt, Func<UploadSession, long, bool>? record,
        CancellationToken ct)
    {
        _uploads = uploads;
        _settings = settings;
        _target = target;
        _blob = blob;
        _session = session;
        _logger = logger;
        _progress = progress;
        _what = what ?? target;
        _chunkSize = options.ChunkSizeFor(blob.Size);
        _life = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _retries = options.PolicyFor(settings, logger).Begin(_what);
        _record = record;
        Sessions = 1;
        _position = _consumed = _stored = resumeAt;
        Record();
        Report(resumeAt);
    }

    /// <summary>
    /// Opens a writer: POSTs a session (or uses <paramref name="session"/>, e.g. the one a refused mount
    /// started). <paramref name="ct"/> bounds the writer's whole life (its requests run between calls).
    /// <paramref name="progress"/> gets the bytes the registry acknowledged (negative after a restart).
    /// <para>
    /// Resuming (registry-push, across runs): <paramref name="resumeAt"/> is the number of bytes
    /// <paramref name="session"/> already holds; the producer then writes from that offset on. <paramref name="record"/>
    /// is told the session and its acknowledged offset whenever they change (it returns true when it kept them
    /// for a later run: then an abandoned writer leaves the session in the registry instead of DELETEing it).
    /// </para>
    /// </summary>
    public static Task<RegistryBlobWriter> OpenAsync(RegistryRepository repository, IRereadableBlob blob, UploadOptions options, ILogger logger,
        CancellationToken ct, UploadSession? session = null, Action<long>? progress = null, string? what = null,
        long resumeAt = 0, Func<UploadSession, long, bool>? record = null) =>
        OpenAsync(new BlobUploadOperations(repository, logger), repository.Client.Settings, $"blob upload to {repository.Client.Registry}/{repository.Name}",
            blob, options, logger, ct, session, progress, what, resumeAt, record);

    /// <summary>
    /// Opens a writer over any <see cref="IBlobUploadOperations"/> (the HTTP calls); this class is only the
    /// policy: what to send next, when to wait, resume or start again. <paramref name="target"/> names the
    /// destination in the failure of a session that cannot be started.
    /// </summary>
    public static async Task<RegistryBlobWriter> OpenAsync(IBlobUploadOperations uploads, HttpSettings settings, string target, IRereadableBlob blob,
        UploadOptions options, ILogger logger, CancellationToken ct, UploadSession? session = null, Action<long>? progress = null, string? what = null,
        long resumeAt = 0, Func<UploadSession, long, bool>? record = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(resumeAt);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(resumeAt, blob.Size);
        if (resumeAt > 0 && session is null)
        {
            throw new ArgumentException("resuming needs the session that holds the bytes", nameof(session));
        }
        session ??= await StartAsync(uploads, target, ct).ConfigureAwait(false);
        return new RegistryBlobWriter(uploads, settings, target, blob, session, options, logger, progress, what, resumeAt, record, ct);
    }

    /// <summary>The blob's size (what the producer must write before <see cref="CommitAsync"/>).</summary>
    public long Size => _blob.Size;

    /// <summary>Chunk size, or null for one streamed PATCH body.</summary>
    public long? ChunkSize => _chunkSize;

    /// <summary>Request body bytes sent to the registry, counting every attempt.</summary>
    public long BodyBytes => Interlocked.Read(ref _bodyBytes);

    /// <summary>Bytes read again from the blob to catch up after a failure (bytes sent more than once).</summary>
    public long RereadBytes => Interlocked.Read(ref _rereadBytes);

    /// <summary>Failures recovered from.</summary>
    public int Recoveries { get; private set; }

    /// <summary>Upload sessions used (1 unless a dead session forced a restart).</summary>
    public int Sessions { get; private set; }

    /// <summary>The current session (tests).</summary>
    public UploadSession Session => _session;

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        EnsureUsable();
        if (data.Length > _blob.Size - _position)
        {
            _broken = true;
            throw new InvalidOperationException($"{_what}: {_position + data.Length} bytes written to a {_blob.Size}-byte blob");
        }
        try
        {
            lock (_gate)
            {
                _pending = data;
                _position += data.Length;
                Signal();
            }
            while (true)
            {
                await PumpAsync(ct).ConfigureAwait(false);
                Task changed;
                lock (_gate)
                {
                    SkipStored();
                    if (_pending.IsEmpty)
                    {
                        break; // every byte is in a request body (or stored): the producer may reuse its buffer
                    }
                    changed = _changed.Task;
                }
                if (_attempt is not { } inFlight)
                {
                    throw new InvalidOperationException($"{_what}: {_pending.Length} bytes wait with no request to take them");
                }
                // a request is sending the buffer (or finishing a chunk first)
                await Task.WhenAny(changed, inFlight.Task).WaitAsync(ct).ConfigureAwait(false);
            }
        }
        catch
        {
            _broken = true;
            throw;
        }
    }

    public async Task CommitAsync(Digest digest, CancellationToken ct)
    {
        EnsureUsable();
        if (_position != _blob.Size)
        {
            _broken = true;
            throw new InvalidOperationException($"{_what}: commit after {_position} of {_blob.Size} bytes");
        }
        try
        {
            CompleteWriter();
            while (true)
            {
                while (_stored < _blob.Size)
                {
                    await PumpAsync(ct).ConfigureAwait(false);
                    if (_attempt is { } a)
                    {
                        await Task.WhenAny(a.Task).WaitAsync(ct).ConfigureAwait(false);
                    }
                }
                if (await PutAsync(digest, ct).ConfigureAwait(false))
                {
                    _committed = true;
                    Report(_blob.Size);
                    return;
                }
            }
        }
        catch
        {
            _broken = true;
            throw;
        }
    }

    /// <summary>Abandons the blob unless it was committed: stops the request in flight and DELETEs the session.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        await _life.CancelAsync().ConfigureAwait(false);
        CompleteWriter();
        if (_attempt is { } a)
        {
            _attempt = null;
            a.Content?.Abort();
            try
            {
                await a.Task.ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _logger.LogDebug("{What}: request in flight ended: {Error}", _what, ErrorText.Describe(e));
            }
        }
        if (!_committed && !_recorded)
        {
            await _uploads.CancelAsync(_session, _what).ConfigureAwait(false);
        }
        lock (_gate)
        {
            _pending = default; // the producer's buffer goes back to it
        }
        _life.Dispose();
    }

    private void EnsureUsable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed || _broken)
        {
            throw new InvalidOperationException($"{_what}: the writer is {(_committed ? "committed" : "failed")}");
        }
    }

    private void CompleteWriter()
    {
        lock (_gate)
        {
            if (!_writerCompleted)
            {
                _writerCompleted = true;
                Signal();
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Wakes whoever waits for <see cref="_pending"/> to change. Under <see cref="_gate"/>.</summary>
    private void Signal()
    {
        var changed = _changed;
        _changed = NewSignal();
        changed.TrySetResult();
    }

    /// <summary>Takes <paramref name="n"/> bytes off the front of <see cref="_pending"/> (they are in a request body, or stored). Under <see cref="_gate"/>.</summary>
    private void Consume(int n)
    {
        _pending = _pending[n..];
        Interlocked.Add(ref _consumed, n);
        Signal();
    }

    /// <summary>Drops the handed-over bytes the registry already has (it took part of a write that failed). Under <see cref="_gate"/>.</summary>
    private void SkipStored()
    {
        long skip = Math.Min(_pending.Length, _stored - _consumed);
        if (skip > 0)
        {
            Consume((int)skip);
        }
    }

    /// <summary>
    /// Up to <paramref name="max"/> handed-over bytes, from where the request bodies stopped; waits for the producer.
    /// Empty when the producer is done. The bytes stay the producer's until <see cref="Consume"/>.
    /// </summary>
    private async Task<ReadOnlyMemory<byte>> PeekAsync(long max, CancellationToken token)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (!_pending.IsEmpty)
                {
                    return _pending[..(int)Math.Min(_pending.Length, max)];
                }
                if (_writerCompleted)
                {
                    return ReadOnlyMemory<byte>.Empty;
                }
                changed = _changed.Task;
            }
            await changed.WaitAsync(token).ConfigureAwait(false);
        }
    }

    private void Report(long stored)
    {
        if (stored != _reported)
        {
            _progress?.Invoke(stored - _reported);
            _reported = stored;
        }
    }

    private static async Task<UploadSession> StartAsync(IBlobUploadOperations uploads, string target, CancellationToken ct)
    {
        try
        {
            return await uploads.StartAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw Failure($"{target}: cannot start an upload session: {ErrorText.Describe(e)}", e);
        }
    }

    /// <summary>Handles a finished request, then starts the next one when bytes wait to be sent.</summary>
    private async Task PumpAsync(CancellationToken ct)
    {
        if (_attempt is { Task.IsCompleted: true } done)
        {
            _attempt = null;
            await FinishPatchAsync(done, ct).ConfigureAwait(false);
        }
        if (_attempt is null && _stored < _blob.Size && _position > _stored)
        {
            StartPatch();
        }
    }

    private void StartPatch()
    {
        long start = _stored;
        long length = _blob.Size - start;
        if (_chunkSize is { } c)
        {
            // at least 2 bytes: "Range: 0-0" then always means an empty session (see BlobUploadOperations.StoredBytes)
            length = Math.Min(length, Math.Max(Math.Max(c, _session.MinChunkLength), 2));
        }
        // a streamed body from byte 0 goes without Content-Range (as containers/image sends it); a resumed
        // or chunked one says where it starts, so the registry checks the offset (416 if it disagrees)
        bool withRange = _chunkSize is not null || start > 0;
        var session = _session;
        var attempt = new Attempt(start, length, _life.Token);
        var headersTimeout = _settings.HeadersTimeout;
        attempt.Task = Task.Run(async () =>
        {
            try
            {
                return await _uploads.UploadChunkAsync(session, () =>
                {
                    attempt.Content?.Abort(); // a resend after a 401: the earlier body stops reading the pipe
                    var content = new FedContent(this, attempt, start, length, headersTimeout);
                    attempt.Content = content;
                    content.Headers.ContentType = RegistryClient.OctetStream;
                    if (withRange)
                    {
                        content.Headers.TryAddWithoutValidation("Content-Range", $"{start}-{start + length - 1}");
                    }
                    return content;
                }, RefusalHint, attempt.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException e) when (!_life.IsCancellationRequested)
            {
                var where = ModelCar.Common.Logging.Redactor.Url(session.Location);
                throw new TimeoutException($"PATCH {where}: no answer {headersTimeout.TotalSeconds:0} s after the body was sent", e);
            }
        }, _life.Token);
        _attempt = attempt;
    }

    private async Task FinishPatchAsync(Attempt attempt, CancellationToken ct)
    {
        UploadAnswer? answer = null;
        Exception? error = null;
        try
        {
            answer = await attempt.Task.ConfigureAwait(false);
        }
        catch (RetryWaitTooLongException e)
        {
            throw Failure($"{_what}: {e.Message}", e, transient: true);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && !_life.IsCancellationRequested && HttpRetry.IsTransient(e, ct))
        {
            error = e;
        }
        catch (Exception e) when (ModelCarException.Find(e) is { } cause)
        {
            throw Failure($"{_what}: {ErrorText.Describe(cause)}", cause, transient: false);
        }
        finally
        {
            attempt.Content?.Abort();
            attempt.Dispose();
        }
        if (answer is { Outcome: UploadOutcome.Stored })
        {
            long end = attempt.Start + attempt.Length;
            long stored = answer.Stored ?? end;
            _session = answer.Session;
            if (stored == end)
            {
                _stored = stored;
                _retries.Progressed();
                Record();
                Report(stored);
                return;
            }
            error = new HttpRequestException($"the registry acknowledged {stored} bytes where {end} were sent");
        }
        else if (answer is { Outcome: UploadOutcome.Refused })
        {
            throw Refused(answer);
        }
        else if (answer is not null)
        {
            error = answer.Error;
        }
        await RecoverAsync(error!, answer?.Delay, answer?.Outcome == UploadOutcome.SessionDead, ct).ConfigureAwait(false);
    }

    /// <summary>PUT ?digest= with an empty body: true when the blob is stored; false when bytes must be sent again first.</summary>
    private async Task<bool> PutAsync(Digest digest, CancellationToken ct)
    {
        UploadAnswer? answer = null;
        Exception? error = null;
        try
        {
            answer = await _uploads.CompleteAsync(_session, digest, RefusalHint, ct).ConfigureAwait(false);
        }
        catch (RetryWaitTooLongException e)
        {
            throw Failure($"{_what}: {e.Message}", e, transient: true);
        }
        catch (DigestMismatchException e)
        {
            throw Failure($"{_what}: {e.Message}", e, transient: false);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && HttpRetry.IsTransient(e, ct))
        {
            error = e;
        }
        bool dead = false;
        if (answer is not null)
        {
            if (answer.Outcome == UploadOutcome.Stored)
            {
                return true;
            }
            if (answer.Outcome == UploadOutcome.Refused)
            {
                if (answer.ServerCode is "DIGEST_INVALID")
                {
                    throw Failure($"{_what}: the registry computed another digest than {digest} for the bytes it received (DIGEST_INVALID): "
                        + "the blob changed while it was read, or its bytes were damaged on the way", null, transient: false);
                }
                throw Refused(answer);
            }
            // a PUT that was cut may still have completed: the blob may be there now
            dead = answer.Outcome == UploadOutcome.SessionDead;
            if (dead && await _uploads.HasBlobAsync(digest, _blob.Size, ct).ConfigureAwait(false))
            {
                return true;
            }
            error = answer.Error;
        }
        await RecoverAsync(error!, answer?.Delay, dead, ct).ConfigureAwait(false);
        return false;
    }

    /// <summary>
    /// After a failed request, under the one retry policy (<see cref="RetryBudget"/>: count, delay, log line):
    /// waits (Retry-After or backoff), asks the session for its Range (or starts a new session when it is
    /// dead) and sets where the next PATCH starts.
    /// </summary>
    private async Task RecoverAsync(Exception error, TimeSpan? delay, bool dead, CancellationToken ct)
    {
        long at = Math.Max(Volatile.Read(ref _consumed), _stored);
        Recoveries++;
        if (!_retries.TryFail() && dead)
        {
            CheckBudget(error);
        }
        // over budget and not dead: the status below may still show the registry got further (a new run of failures)
        await _retries.WaitAsync($"{ErrorText.Describe(error)} at byte {at}",
            dead ? "starting the blob again with a new session" : "asking the session for its offset", delay, ct).ConfigureAwait(false);
        if (!dead)
        {
            (UploadSession Session, long Offset)? status;
            try
            {
                status = await _uploads.GetStatusAsync(_session, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                throw Failure($"{_what}: {ErrorText.Describe(error)}; then the upload session could not be asked for its offset: {ErrorText.Describe(e)}", e);
            }
            if (status is { } s && s.Offset <= _position)
            {
                if (s.Offset > _lastFailureOffset)
                {
                    // the registry got further since the last failure: a long streamed body is not a run of failures
                    _retries.Progressed();
                    _retries.TryFail();
                }
                CheckBudget(error);
                _session = s.Session;
                _logger.LogWarning("{What}: the registry has {Have} bytes, resuming from there", _what, s.Offset);
                _stored = s.Offset;
                Record();
            }
            else
            {
                dead = true;
                CheckBudget(error);
            }
        }
        if (dead)
        {
            _logger.LogWarning("{What}: upload session lost ({Error}); starting the blob again with a new session", _what, ErrorText.Describe(error));
            _session = await StartAsync(_uploads, _target, ct).ConfigureAwait(false);
            Sessions++;
            _stored = 0;
            Record();
        }
        _lastFailureOffset = _stored;
        Report(_stored);
    }

    /// <summary>At most <see cref="UploadOptions.MaxRecoveries"/> failures in a row (without the registry getting further).</summary>
    private void CheckBudget(Exception error)
    {
        if (_retries.Exhausted)
        {
            throw BlobUploadException.GaveUp($"{_what} failed {_retries.Failures} times in a row at byte {_stored} of {_blob.Size}", error);
        }
    }

    /// <summary>Tells the owner where the session stands (OpenAsync's <c>record</c>); what it answers decides whether an abandoned session is kept.</summary>
    private void Record() => _recorded = _record?.Invoke(_session, _stored) ?? false;

    /// <summary>What the writer adds to a refused PATCH or PUT.</summary>
    private static string? RefusalHint(HttpStatusCode status) => status switch
    {
        HttpStatusCode.RequestEntityTooLarge => "the registry refuses a body this large: upload in smaller chunks",
        HttpStatusCode.Unauthorized => "the credentials were refused",
        HttpStatusCode.Forbidden => "the credentials are not allowed to push to this repository",
        _ => null,
    };

    private BlobUploadException Refused(UploadAnswer answer) => Failure($"{_what}: {answer.Error!.Message}", answer.Error, transient: false);
    private static BlobUploadException Failure(string message, Exception? inner, bool? transient = null) =>
        inner as BlobUploadException ?? new BlobUploadException(message, transient ?? (inner is not null && IsTransientFailure(inner)), inner);

    private static bool IsTransientFailure(Exception e) => e switch
    {
        HttpFailureException h => HttpRetry.IsTransient(h.Status),
        RetryWaitTooLongException => true,
        ModelCarException => false,
        _ => HttpRetry.IsTransient(e, CancellationToken.None),
    };

    /// <summary>
    /// One PATCH: where it starts, how long it is, the body currently being sent, and its token, which
    /// also bounds the wait for the answer once the whole body is out (<see cref="HttpSettings.HeadersTimeout"/>).
    /// </summary>
    private sealed class Attempt(long start, long length, CancellationToken life) : IDisposable
    {
        private readonly CancellationTokenSource _cts = CancellationTokenSource.CreateLinkedTokenSource(life);

        public long Start { get; } = start;
        public long Length { get; } = length;
        public Task<UploadAnswer> Task { get; set; } = null!;
        public FedContent? Content { get; set; }
        public CancellationToken Token => _cts.Token;

        /// <summary>A body starts (again, after a 401): no answer is due yet.</summary>
        public void BodyStarted() => Try(() => _cts.CancelAfter(Timeout.InfiniteTimeSpan));

        /// <summary>The whole body is out: the answer is due within <paramref name="timeout"/>.</summary>
        public void BodySent(TimeSpan timeout) => Try(() => _cts.CancelAfter(timeout));

        private static void Try(Action a)
        {
            try
            {
                a();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        public void Dispose() => _cts.Dispose();
    }

    /// <summary>
    /// The body of one PATCH: bytes [start, start + length) of the blob. Those the pipe already gave
    /// out (lost with an earlier request) are re-read from the blob; the rest come from the pipe.
    /// Created per attempt (a 401 resend builds a new one, which re-reads what the first one took).
    /// </summary>
    private sealed class FedContent : HttpContent
    {
        private readonly RegistryBlobWriter _w;
        private readonly Attempt _attempt;
        private readonly long _start;
        private readonly long _length;
        private readonly TimeSpan _headersTimeout;
        private readonly CancellationTokenSource _abort = new();

        public FedContent(RegistryBlobWriter writer, Attempt attempt, long start, long length, TimeSpan headersTimeout)
        {
            _w = writer;
            _attempt = attempt;
            _headersTimeout = headersTimeout;
            _start = start;
            _length = length;
            Headers.ContentLength = length;
        }

        public void Abort()
        {
            try
            {
                _abort.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _abort.Token);
            var token = linked.Token;
            var stallTimeout = _w._settings.StallTimeout;
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(token);
            await _w._reader.WaitAsync(token).ConfigureAwait(false);
            _attempt.BodyStarted();
            try
            {
                long offset = _start;
                long end = _start + _length;
                long live = _w._consumed;
                if (offset < live)
                {
                    // catch up: the bytes an earlier request took out of the pipe, which the registry lost
                    long n = Math.Min(live, end) - offset;
                    var buffer = ArrayPool<byte>.Shared.Rent(SliceSize);
                    try
                    {
                        await using var source = _w._blob.OpenAt(offset);
                        while (n > 0)
                        {
                            int read = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, n)), token).ConfigureAwait(false);
                            if (read == 0)
                            {
                                throw new RegistryException($"{_w._what}: the blob ended {n} bytes early when read again from byte {offset}");
                            }
                            await WriteAsync(stream, buffer.AsMemory(0, read), stall, stallTimeout, cancellationToken).ConfigureAwait(false);
                            Interlocked.Add(ref _w._rereadBytes, read);
                            offset += read;
                            n -= read;
                        }
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }
                while (_w._consumed < offset)
                {
                    // the registry took part of a write that failed: those bytes are still handed over, skip them
                    var skipped = await _w.PeekAsync(offset - _w._consumed, token).ConfigureAwait(false);
                    if (skipped.IsEmpty)
                    {
                        throw new RegistryException($"{_w._what}: the producer stopped before byte {offset}");
                    }
                    lock (_w._gate)
                    {
                        _w.Consume(skipped.Length);
                    }
                }
                while (offset < end)
                {
                    // straight from the producer's buffer to the socket; consumed only once the transport took it all
                    var data = await _w.PeekAsync(end - offset, token).ConfigureAwait(false);
                    if (data.IsEmpty)
                    {
                        throw new RegistryException($"{_w._what}: the producer stopped {end - offset} bytes before the end of the request body");
                    }
                    await WriteAsync(stream, data, stall, stallTimeout, cancellationToken).ConfigureAwait(false);
                    offset += data.Length;
                    lock (_w._gate)
                    {
                        _w.Consume(data.Length);
                    }
                }
                _attempt.BodySent(_headersTimeout);
            }
            finally
            {
                _w._reader.Release();
            }
        }

        private async Task WriteAsync(Stream stream, ReadOnlyMemory<byte> data, CancellationTokenSource stall, TimeSpan stallTimeout, CancellationToken requestToken)
        {
            Interlocked.Add(ref _w._bodyBytes, data.Length); // handed to the transport (it may take part of it before a cut)
            stall.CancelAfter(stallTimeout);
            try
            {
                await stream.WriteAsync(data, stall.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!requestToken.IsCancellationRequested && !_abort.IsCancellationRequested)
            {
                throw new TimeoutException($"upload stalled: no progress for {stallTimeout.TotalSeconds:0} s");
            }
            stall.CancelAfter(Timeout.InfiniteTimeSpan);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _length;
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Abort();
            }
            base.Dispose(disposing);
        }
    }
}
