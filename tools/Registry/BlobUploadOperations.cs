using System.Net;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Oci;

namespace ModelCar.Registry;

/// <summary>An upload session: where to send the next request, and the registry's minimum chunk size.</summary>
public sealed record UploadSession(Uri Location, long MinChunkLength);

/// <summary>The answer to a mount request: mounted, or an upload session to use instead (202).</summary>
public sealed record MountResult(bool Mounted, UploadSession? Session);

/// <summary>What an answer to an upload request means for the loop that sends the blob.</summary>
public enum UploadOutcome
{
    /// <summary>The bytes (PATCH) or the blob (PUT) are stored.</summary>
    Stored,

    /// <summary>The registry dropped the session (404 BLOB_UPLOAD_INVALID/UNKNOWN): start the blob again.</summary>
    SessionDead,

    /// <summary>Temporary (5xx, 408, 429; 416 for a PATCH): wait, ask the session for its Range, go on.</summary>
    Retry,

    /// <summary>Anything else: retrying cannot help.</summary>
    Refused,
}

/// <summary>
/// A classified answer to a <c>PATCH</c> or the closing <c>PUT</c>. <see cref="Session"/> is where the next
/// request goes (the server's new Location, if it sent one). <see cref="Stored"/> is the bytes the session
/// holds by its Range header (PATCH only; null without one). <see cref="Error"/> is what to report (for
/// <see cref="UploadOutcome.Refused"/> the server's error, with <see cref="ServerCode"/>); <see cref="Delay"/>
/// the wait the server asked for.
/// </summary>
public sealed record UploadAnswer(UploadOutcome Outcome, UploadSession Session, long? Stored = null, Exception? Error = null, TimeSpan? Delay = null,
    string? ServerCode = null);

/// <summary>
/// The distribution-spec upload endpoints of one repository, one HTTP call each, nothing retried or resumed
/// here (the shape of dotnet/sdk Containers' <c>IBlobUploadOperations</c>). The loop that sends a blob
/// (<see cref="RegistryBlobWriter"/>) decides what to do with each answer under the
/// one <see cref="RetryPolicy"/>. A 401 is answered by <see cref="RegistryClient"/> (new handshake, the same
/// request again); credentials go only to the registry's own origin, a foreign Location gets none.
/// </summary>
public interface IBlobUploadOperations
{
    /// <summary>POST a new upload session.</summary>
    Task<UploadSession> StartAsync(CancellationToken ct);

    /// <summary>Cross-repository mount: 201 = mounted; 202 = the registry started an upload instead.</summary>
    Task<MountResult> MountAsync(Digest digest, string fromRepository, CancellationToken ct);

    /// <summary>GET the upload URL: the bytes the session holds (by its Range), or null when the session is gone (404, 400).</summary>
    Task<(UploadSession Session, long Offset)?> GetStatusAsync(UploadSession session, CancellationToken ct);

    /// <summary>
    /// PATCH <paramref name="body"/> (built again for a resend after a 401) to the session. Network failures throw;
    /// every answer is classified. <paramref name="hint"/> adds a cause to a refusal by its status.
    /// </summary>
    Task<UploadAnswer> UploadChunkAsync(UploadSession session, Func<HttpContent> body, Func<HttpStatusCode, string?>? hint, CancellationToken ct);

    /// <summary>PUT ?digest= with an empty body (the bytes went in PATCHes): classified; a stored blob's reported digest is checked
    /// (<see cref="DigestMismatchException"/> when the registry names another one).</summary>
    Task<UploadAnswer> CompleteAsync(UploadSession session, Digest digest, Func<HttpStatusCode, string?>? hint, CancellationToken ct);

    /// <summary>HEAD the blob and trust a 200 only with the right size and digest (<see cref="RegistryRepository.HasBlobAsync"/>).</summary>
    Task<bool> HasBlobAsync(Digest digest, long size, CancellationToken ct);

    /// <summary>Best-effort <c>DELETE</c> of a session (<paramref name="what"/> names it in the log), bounded by
    /// <see cref="BlobUploadOperations.CancelTimeout"/>; never throws.</summary>
    Task CancelAsync(UploadSession session, string what);
}

/// <summary>The HTTP implementation of <see cref="IBlobUploadOperations"/> over a <see cref="RegistryRepository"/>.</summary>
public sealed class BlobUploadOperations(RegistryRepository repository, ILogger logger) : IBlobUploadOperations
{
    /// <summary>How long a best-effort DELETE of a session may take (the process ends 2 s after a signal).</summary>
    public static readonly TimeSpan CancelTimeout = TimeSpan.FromMilliseconds(1500);

    public RegistryRepository Repository => repository;

    private RegistryClient Client => repository.Client;

    public async Task<UploadSession> StartAsync(CancellationToken ct)
    {
        var url = repository.UploadsUrl;
        using var response = await Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent([]) },
            repository.PushScope, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
        }
        return SessionFrom(url, response);
    }

    public async Task<MountResult> MountAsync(Digest digest, string fromRepository, CancellationToken ct)
    {
        var url = RegistryClient.WithQuery(RegistryClient.WithQuery(repository.UploadsUrl, "mount", digest.ToString()), "from", fromRepository);
        var scope = repository.PushScope + " " + RegistryClient.PullScope(fromRepository);
        using var response = await Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent([]) }, scope, ct)
            .ConfigureAwait(false);
        return response.StatusCode switch
        {
            HttpStatusCode.Created => new MountResult(true, null),
            HttpStatusCode.Accepted => new MountResult(false, SessionFrom(url, response)),
            _ => throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false),
        };
    }

    public async Task<(UploadSession Session, long Offset)?> GetStatusAsync(UploadSession session, CancellationToken ct)
    {
        using var response = await Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Get, session.Location), repository.PushScope, ct)
            .ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.OK or HttpStatusCode.Accepted)
        {
            return (Next(session, response), StoredBytes(response) ?? 0);
        }
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest)
        {
            return null;
        }
        throw await RegistryErrors.ToExceptionAsync(response, ct).ConfigureAwait(false);
    }

    public async Task<UploadAnswer> UploadChunkAsync(UploadSession session, Func<HttpContent> body, Func<HttpStatusCode, string?>? hint, CancellationToken ct)
    {
        var location = session.Location;
        var response = await Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Patch, location) { Content = body() },
            repository.PushScope, ct, retry: false).ConfigureAwait(false);
        return await AnswerAsync(session, response, patch: true, hint, ct).ConfigureAwait(false);
    }

    public async Task<UploadAnswer> CompleteAsync(UploadSession session, Digest digest, Func<HttpStatusCode, string?>? hint, CancellationToken ct)
    {
        var url = RegistryClient.WithQuery(session.Location, "digest", digest.ToString());
        var response = await Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Put, url) { Content = new ByteArrayContent([]) },
            repository.PushScope, ct, retry: false).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.Created or HttpStatusCode.NoContent or HttpStatusCode.OK)
        {
            using (response)
            {
                RegistryRepository.CheckReportedDigest(response, digest, $"PUT blob {digest}");
            }
            return new UploadAnswer(UploadOutcome.Stored, session);
        }
        return await AnswerAsync(session, response, patch: false, hint, ct).ConfigureAwait(false);
    }

    public Task<bool> HasBlobAsync(Digest digest, long size, CancellationToken ct) => repository.HasBlobAsync(digest, size, ct);

    public async Task CancelAsync(UploadSession session, string what)
    {
        using var timeout = new CancellationTokenSource(CancelTimeout);
        try
        {
            using var response = await Client.SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, session.Location),
                repository.PushScope, timeout.Token, retry: false).ConfigureAwait(false);
            logger.LogInformation("{What}: upload session cancelled (DELETE: {Status})", what, (int)response.StatusCode);
        }
        catch (Exception e)
        {
            logger.LogDebug("{What}: could not cancel the upload session: {Error}", what, ErrorText.Describe(e));
        }
    }

    /// <summary>
    /// The one rule for answers to upload requests (disposes the response). A 202 to a PATCH is the spec's answer;
    /// ECR answers 201 (kitops#821). A Retry-After beyond <see cref="HttpSettings.MaxRetryWait"/> throws
    /// <see cref="RetryWaitTooLongException"/> (<see cref="HttpRetry.CheckServerDelay"/>).
    /// </summary>
    private async Task<UploadAnswer> AnswerAsync(UploadSession session, HttpResponseMessage response, bool patch, Func<HttpStatusCode, string?>? hint,
        CancellationToken ct)
    {
        using (response)
        {
            var status = response.StatusCode;
            if (patch ? status is HttpStatusCode.Accepted or HttpStatusCode.NoContent or HttpStatusCode.Created
                      : status is HttpStatusCode.Created or HttpStatusCode.NoContent or HttpStatusCode.OK)
            {
                return new UploadAnswer(UploadOutcome.Stored, Next(session, response), patch ? StoredBytes(response) : null);
            }
            if (status == HttpStatusCode.NotFound)
            {
                await response.Content.LoadIntoBufferAsync(ct).ConfigureAwait(false);
                var code = ServerCode(response);
                if (code is null or "BLOB_UPLOAD_INVALID" or "BLOB_UPLOAD_UNKNOWN")
                {
                    return new UploadAnswer(UploadOutcome.SessionDead, session, Error: new HttpRequestException($"{(int)status} {code}"));
                }
            }
            if ((patch && status == HttpStatusCode.RequestedRangeNotSatisfiable) || HttpRetry.IsTransient(status))
            {
                var delay = HttpRetry.CheckServerDelay(response, Client.Settings.MaxRetryWait);
                return new UploadAnswer(UploadOutcome.Retry, session, Error: new HttpRequestException($"{(int)status} {response.ReasonPhrase}"), Delay: delay);
            }
            await response.Content.LoadIntoBufferAsync(ct).ConfigureAwait(false);
            var serverCode = ServerCode(response);
            var refusal = await RegistryErrors.ToExceptionAsync(response, ct, hint?.Invoke(status)).ConfigureAwait(false);
            return new UploadAnswer(UploadOutcome.Refused, session, Error: refusal, ServerCode: serverCode);
        }
    }

    /// <summary>The session with the Location the server sent (if any).</summary>
    private static UploadSession Next(UploadSession session, HttpResponseMessage response) =>
        response.Headers.Location is not null ? session with { Location = RegistryClient.ResolveLocation(session.Location, response) } : session;

    internal static UploadSession SessionFrom(Uri requestUrl, HttpResponseMessage response)
    {
        long min = 0;
        if (response.Headers.TryGetValues("OCI-Chunk-Min-Length", out var values) && long.TryParse(values.FirstOrDefault(), out long m) && m > 0)
        {
            min = m;
        }
        return new UploadSession(RegistryClient.ResolveLocation(requestUrl, response), min);
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

    /// <summary>The server's error code in a buffered error body, or null.</summary>
    private static string? ServerCode(HttpResponseMessage response)
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
}
