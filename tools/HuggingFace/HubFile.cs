using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.Common.Logging;

namespace ModelCar.HuggingFace;

/// <summary>The downloaded bytes do not match the tree listing (hash or size).</summary>
public class VerificationException(string message) : HubException(message);

/// <summary>The right number of bytes arrived, but their hash is not the listing's.</summary>
public sealed class HashMismatchException(string message, string actual) : VerificationException(message)
{
    public string Actual { get; } = actual;
}

/// <summary>The partial file cannot be continued (server ignored Range on a resume, or answered 416): start over.</summary>
internal sealed class RestartException(string message, bool rangeIgnored) : Exception(message)
{
    /// <summary>The server does not do Range: the next attempt is one plain stream.</summary>
    public bool RangeIgnored { get; } = rangeIgnored;
}

/// <summary>
/// One Hub file at one commit, readable from any offset: <c>/resolve/COMMIT/PATH</c> followed by hand (the
/// token never reaches a CDN host), the signed redirect target remembered for later requests and resolved
/// again when it expired (401/403/404/410), every answer checked against the tree listing (commit, size,
/// Range), Range honoured or ignored. <see cref="OpenAt"/> is the stream hf-fetch's chunks and
/// <c>oci-pack --model hf://</c>'s layers read: a cut continues with Range from the last byte received, and
/// a read from byte 0 to the end verifies the listing's sha256 (LFS) or git blob sha1 as the bytes flow.
/// </summary>
public sealed class HubFile
{
    private readonly Uri _resolveUrl;
    private HubClient _client;
    private readonly ILogger _logger;
    private Uri _url;

    public HubFile(HubClient client, Uri resolveUrl, string commit, FilePlan plan, ILogger logger)
    {
        _client = client;
        _resolveUrl = new Uri(resolveUrl.OriginalString);
        _url = resolveUrl;
        Commit = commit;
        Plan = plan;
        _logger = logger;
    }

    public static HubFile At(HubClient client, RepoType type, string repoId, string commit, FilePlan plan, ILogger logger) =>
        new(client, HubPaths.Resolve(client.Endpoint, type, repoId, commit, plan.RepoPath), commit, plan, logger);

    public FilePlan Plan { get; }

    public string Commit { get; }

    public string RepoPath => Plan.RepoPath;

    public long Size => Plan.Size;

    public HubClient Client => Volatile.Read(ref _client);

    /// <summary>Drops the remembered redirect target: the next request resolves again (a new signed URL).</summary>
    public void ForgetRedirect() => Volatile.Write(ref _url, _resolveUrl);

    /// <summary>
    /// For the one refetch after a body failed its hash: later requests resolve again (a new signed URL) over a
    /// new connection (<see cref="HubClient.WithNewConnections"/>), not the pooled one that delivered the bad bytes.
    /// Call it while no reader of this file is open.
    /// </summary>
    public void UseNewConnection()
    {
        Volatile.Write(ref _client, Volatile.Read(ref _client).WithNewConnections());
        ForgetRedirect();
    }

    /// <summary>
    /// Opens bytes [<paramref name="from"/>, <paramref name="to"/>] (a plain GET when not <paramref name="ranged"/>),
    /// resolving once more if a remembered CDN URL went stale. A 200 to a Range request from byte &gt; 0 throws
    /// <see cref="RestartException"/> unless <paramref name="acceptIgnoredRange"/> (the caller then skips).
    /// </summary>
    internal async Task<HubResponse> OpenAsync(long from, long to, bool ranged, bool acceptIgnoredRange, CancellationToken ct)
    {
        var url = Volatile.Read(ref _url);
        var range = ranged ? new RangeHeaderValue(from, to) : null;
        var response = await Client.SendAsync(HttpMethod.Get, url, range, ct).ConfigureAwait(false);
        if ((int)response.Message.StatusCode is 401 or 403 or 404 or 410 && url != _resolveUrl)
        {
            _logger.LogDebug("{Path}: {Status} from the redirect target; resolving again", RepoPath, (int)response.Message.StatusCode);
            response.Dispose();
            ForgetRedirect();
            response = await Client.SendAsync(HttpMethod.Get, _resolveUrl, range, ct).ConfigureAwait(false);
        }
        try
        {
            return await CheckOpenedAsync(response, from, to, acceptIgnoredRange, ct).ConfigureAwait(false);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>A zero-byte file: one plain GET whose body must be empty.</summary>
    public async Task CheckEmptyAsync(CancellationToken ct)
    {
        using var response = await Client.SendAsync(HttpMethod.Get, Volatile.Read(ref _url), null, ct).ConfigureAwait(false);
        await Client.EnsureSuccessAsync(response.Message, HttpMethod.Get, response.FinalUrl, ct, RepoPath).ConfigureAwait(false);
        CheckHubHeaders(response.First);
        await using var body = await response.Message.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var one = new byte[1];
        if (await body.ReadAsync(one, ct).ConfigureAwait(false) > 0)
        {
            throw new VerificationException($"{RepoPath}: size mismatch: the server sends bytes for a file the tree listing says is empty (file not kept)");
        }
    }

    private async Task<HubResponse> CheckOpenedAsync(HubResponse response, long from, long to, bool acceptIgnoredRange, CancellationToken ct)
    {
        if (response.Message.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            string? contentRange = response.Message.Content.Headers.ContentRange?.ToString();
            throw new RestartException($"416 Range Not Satisfiable for bytes {from}-{to}{(contentRange is null ? "" : $" (server: {contentRange})")}", rangeIgnored: false);
        }
        await Client.EnsureSuccessAsync(response.Message, HttpMethod.Get, response.FinalUrl, ct, RepoPath).ConfigureAwait(false);
        Volatile.Write(ref _url, response.FinalUrl);
        CheckHubHeaders(response.First);
        var message = response.Message;
        if (message.StatusCode == HttpStatusCode.PartialContent)
        {
            var cr = message.Content.Headers.ContentRange;
            if (cr is null || cr.From != from)
            {
                throw new HubException($"{RepoPath}: server answered bytes {cr?.From}-{cr?.To} to a request for {from}-{to}");
            }
            if (cr.Length is { } total && total != Size)
            {
                throw new VerificationException($"{RepoPath}: size mismatch: the server has {total} bytes, the tree listing says {Size} (file not kept)");
            }
        }
        else if (message.StatusCode == HttpStatusCode.OK)
        {
            if (from > 0 && !acceptIgnoredRange)
            {
                throw new RestartException($"server ignored Range (200) when resuming at byte {from}", rangeIgnored: true);
            }
            if (message.Content.Headers.ContentLength is { } length && length != Size)
            {
                throw new VerificationException($"{RepoPath}: size mismatch: the server sends {length} bytes, the tree listing says {Size} (file not kept)");
            }
        }
        else
        {
            throw new HubException($"{RepoPath}: unexpected {(int)message.StatusCode} {message.ReasonPhrase} from {Redactor.Url(response.FinalUrl)}");
        }
        return response;
    }

    private void CheckHubHeaders(ResolveHeaders first)
    {
        if (first.Commit is { } c && !string.Equals(c, Commit, StringComparison.OrdinalIgnoreCase))
        {
            throw new HubException($"{RepoPath}: the Hub answered for commit {c}, expected {Commit}");
        }
        if (first.Etag is { } etag && (HubClient.IsHex(etag, 40) || HubClient.IsHex(etag, 64)) && etag.Length == Plan.Hash.Length
            && !string.Equals(etag, Plan.Hash, StringComparison.OrdinalIgnoreCase))
        {
            // the content hash decides; an etag that is not the content hash is a server quirk worth a warning, not a failure
            _logger.LogWarning("{Path}: the Hub's etag {Etag} differs from the tree listing's {HashName} {Hash}", RepoPath, etag, Plan.HashName, Plan.Hash);
        }
        if (first.LinkedSize is { } size && size != Size)
        {
            throw new VerificationException($"{RepoPath}: size mismatch: X-Linked-Size {size}, the tree listing says {Size}");
        }
    }

    /// <summary>
    /// The file's bytes from <paramref name="offset"/> to the end, as one stream: opened on the first read, a cut
    /// or stalled connection continues with Range from the last byte received (the shared backoff, the retry
    /// budget reset by progress), a server that ignores Range is read from the start and the bytes before the
    /// position skipped. From offset 0 the hash is checked after the last byte (<see cref="HashMismatchException"/>).
    /// <paramref name="received"/> is told every byte taken from the network.
    /// </summary>
    public Stream OpenAt(long offset, Action<long>? received = null, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, Size);
        return new Reader(this, offset, received, ct);
    }

    private sealed class Reader(HubFile file, long offset, Action<long>? received, CancellationToken ct) : Stream
    {
        private const int SkipBuffer = 1 << 16;
        private readonly System.Security.Cryptography.IncrementalHash? _hash = offset == 0 ? LocalState.StartHash(file.Plan.Kind, file.Size) : null;
        private HubResponse? _response;
        private Stream? _body;
        private long _position = offset;
        private readonly RetryBudget _retries = RetryPolicy.From(file._client.Settings, file._logger).Begin(file.RepoPath);
        private bool _verified;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => file.Size;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();

        public override int Read(Span<byte> buffer)
        {
            var rented = ArrayPool<byte>.Shared.Rent(buffer.Length);
            try
            {
                int n = ReadAsync(rented.AsMemory(0, buffer.Length), CancellationToken.None).AsTask().GetAwaiter().GetResult();
                rented.AsSpan(0, n).CopyTo(buffer);
                return n;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, cancellationToken);
            var token = linked.Token;
            if (_position >= file.Size || buffer.Length == 0)
            {
                Finish();
                return 0;
            }
            int want = (int)Math.Min(buffer.Length, file.Size - _position);
            while (true)
            {
                long before = _position;
                try
                {
                    _body ??= await ConnectAsync(token).ConfigureAwait(false);
                    int n = await _body.ReadAsync(buffer[..want], token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw new IOException($"connection closed after {_position} of {file.Size} bytes");
                    }
                    _hash?.AppendData(buffer.Span[..n]);
                    _position += n;
                    _retries.Progressed();
                    received?.Invoke(n);
                    if (_position == file.Size)
                    {
                        Finish();
                    }
                    return n;
                }
                catch (Exception e) when (HttpRetry.IsTransient(e, token) && !token.IsCancellationRequested && _retries.TryFail())
                {
                    Disconnect();
                    await _retries.WaitAsync($"transfer broke at byte {_position} ({ErrorText.Describe(e)})", "continuing with Range", null, token).ConfigureAwait(false);
                }
            }
        }

        /// <summary>Opens from the position; a 200 (Range ignored) is read from byte 0 and the first bytes skipped.</summary>
        private async Task<Stream> ConnectAsync(CancellationToken token)
        {
            var response = await file.OpenAsync(_position, file.Size - 1, ranged: _position > 0, acceptIgnoredRange: true, token).ConfigureAwait(false);
            _response = response;
            var settings = file.Client.Settings;
            var raw = await response.Message.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
            var body = new StallTimeoutStream(raw, settings.StallTimeout, HubClient.NoData(response.FinalUrl, settings.StallTimeout));
            if (_position > 0 && response.Message.StatusCode == HttpStatusCode.OK)
            {
                file._logger.LogDebug("{Path}: Range ignored (200); skipping {Skip} bytes", file.RepoPath, _position);
                var skip = ArrayPool<byte>.Shared.Rent(SkipBuffer);
                try
                {
                    for (long left = _position; left > 0;)
                    {
                        int n = await body.ReadAsync(skip.AsMemory(0, (int)Math.Min(SkipBuffer, left)), token).ConfigureAwait(false);
                        if (n == 0)
                        {
                            throw new IOException($"connection closed after {_position - left} of {file.Size} bytes (skipping to byte {_position})");
                        }
                        left -= n;
                        received?.Invoke(n);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(skip);
                }
            }
            return body;
        }

        private void Finish()
        {
            if (_hash is null || _verified || _position != file.Size)
            {
                return;
            }
            _verified = true;
            string hash = Convert.ToHexStringLower(_hash.GetHashAndReset());
            if (!string.Equals(hash, file.Plan.Hash, StringComparison.Ordinal))
            {
                Disconnect();
                throw new HashMismatchException($"{file.RepoPath}: {file.Plan.HashName} mismatch: expected {file.Plan.Hash} (the tree listing), got {hash}", hash);
            }
        }

        private void Disconnect()
        {
            _body?.Dispose();
            _body = null;
            _response?.Dispose();
            _response = null;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Disconnect();
                _hash?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
