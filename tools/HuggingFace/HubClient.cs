using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.Common.Logging;
using Polly;

namespace ModelCar.HuggingFace;

/// <summary>What the Hub said on the first hop of a /resolve/ request (before any redirect).</summary>
public sealed record ResolveHeaders(string? Commit, string? Etag, long? LinkedSize);

/// <summary>A response after redirects were followed by hand, with the Hub's own headers of the first hop.</summary>
public sealed class HubResponse(HttpResponseMessage message, Uri finalUrl, ResolveHeaders first) : IDisposable
{
    public HttpResponseMessage Message { get; } = message;

    /// <summary>The URL that answered (a signed CDN URL for LFS files): later Range requests go straight there.</summary>
    public Uri FinalUrl { get; } = finalUrl;

    public ResolveHeaders First { get; } = first;

    public void Dispose() => Message.Dispose();
}

/// <summary>
/// Hub HTTP: the token only ever goes to the endpoint's own scheme/host/port (redirects followed by hand,
/// a CDN host never sees Authorization), retries through <see cref="HttpRetry"/>, Hub error codes mapped
/// to one clear line.
/// </summary>
public sealed partial class HubClient(HttpClient http, string endpoint, string? accessToken, HttpSettings settings, ILogger logger)
{
    private const int MaxRedirects = 10;
    private readonly ResiliencePipeline<HttpResponseMessage> _retry = HttpRetry.Create(settings, logger);
    private readonly Uri _endpoint = new(endpoint + "/");

    public string Endpoint { get; } = endpoint;
    public HttpSettings Settings { get; } = settings;
    public bool HasToken => accessToken is not null;

    /// <summary>
    /// The same client (endpoint, token, settings) on a new <see cref="HttpClient"/> with its own connection
    /// pool, so its first request opens a new TCP (and TLS) connection: for fetching a corrupted body again
    /// not over the connection that delivered it (behind a load balancer or proxy, likely another node). The
    /// new pool lives as long as the process (one per refetched file at most).
    /// </summary>
    public HubClient WithNewConnections() => new(HttpClientFactory.Create(Settings), Endpoint, accessToken, Settings, logger);

    /// <summary>True when <paramref name="url"/> is on the endpoint's own origin (the only place the token goes).</summary>
    public bool IsSameOrigin(Uri url) =>
        url.Scheme == _endpoint.Scheme && string.Equals(url.IdnHost, _endpoint.IdnHost, StringComparison.OrdinalIgnoreCase) && url.Port == _endpoint.Port;

    /// <summary>Branch, tag, refs/pr/N or commit → the 40-hex commit.</summary>
    public async Task<string> ResolveRevisionAsync(RepoType type, string repoId, string revision, CancellationToken ct)
    {
        var url = HubPaths.Revision(Endpoint, type, repoId, revision);
        using var response = await SendAsync(HttpMethod.Get, url, null, ct).ConfigureAwait(false);
        await EnsureSuccessAsync(response.Message, HttpMethod.Get, url, ct).ConfigureAwait(false);
        var info = await ReadJsonAsync(response.Message, HubJson.Revision, url, ct).ConfigureAwait(false);
        if (info.Sha is not { } sha || !IsHex(sha, 40))
        {
            throw new HubException($"GET {Redactor.Url(url)}: answer has no commit sha");
        }
        return sha.ToLowerInvariant();
    }

    /// <summary>Most pages one tree listing may take (the Hub sends up to 1,000 entries a page).</summary>
    public const int DefaultMaxTreePages = 2_000;

    /// <summary>Most bytes of JSON one tree listing may take (about 500,000 entries): memory stays bounded.</summary>
    public const long DefaultMaxTreeBytes = 128L << 20;

    /// <summary>Bound on the pages of one tree listing (<see cref="DefaultMaxTreePages"/>).</summary>
    public int MaxTreePages { get; init; } = DefaultMaxTreePages;

    /// <summary>Bound on the JSON bytes of one tree listing, all pages together (<see cref="DefaultMaxTreeBytes"/>).</summary>
    public long MaxTreeBytes { get; init; } = DefaultMaxTreeBytes;

    /// <summary>
    /// Every entry of the tree at <paramref name="commit"/>, following Link rel="next" pages, bounded by
    /// <see cref="MaxTreePages"/> and <see cref="MaxTreeBytes"/>, and checked as a whole (<see cref="TreeListing.Validate"/>).
    /// </summary>
    public async Task<List<TreeEntry>> ListTreeAsync(RepoType type, string repoId, string commit, CancellationToken ct)
    {
        var all = new List<TreeEntry>();
        Uri? url = HubPaths.Tree(Endpoint, type, repoId, commit);
        int pages = 0;
        var budget = new ReadBudget(MaxTreeBytes, b => new HubException(
            $"tree listing of {repoId} is too large: over {SizeParser.Format(b.Limit)} of JSON in {pages} page(s) (at most {SizeParser.Format(b.Limit)})"));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (url is not null)
        {
            if (pages >= MaxTreePages)
            {
                throw new HubException($"tree listing of {repoId} does not end: {pages} pages read, the next page link still given (at most {MaxTreePages} pages)");
            }
            if (!seen.Add(url.AbsoluteUri))
            {
                throw new HubException($"tree listing of {repoId} does not end: page {pages + 1} links back to a page already read");
            }
            pages++;
            using var response = await SendAsync(HttpMethod.Get, url, null, ct).ConfigureAwait(false);
            await EnsureSuccessAsync(response.Message, HttpMethod.Get, url, ct).ConfigureAwait(false);
            all.AddRange(await ReadJsonAsync(response.Message, HubJson.Tree, url, ct, budget).ConfigureAwait(false));
            var next = NextLink(response.Message);
            url = next is null ? null : new Uri(url, next);
        }
        logger.LogDebug("tree of {Repo}@{Commit}: {Count} entries in {Pages} page(s), {Bytes}", repoId, commit, all.Count, pages, SizeParser.Format(budget.Used));
        return TreeListing.Validate(repoId, all);
    }

    /// <summary>
    /// Sends a request (fresh per retry attempt), following redirects by hand: Authorization only on the
    /// endpoint's origin; https→http downgrades refused. The caller checks the final status.
    /// </summary>
    public async Task<HubResponse> SendAsync(HttpMethod method, Uri url, RangeHeaderValue? range, CancellationToken ct)
    {
        ResolveHeaders? first = null;
        for (int hop = 0; ; hop++)
        {
            var current = url;
            var response = await _retry.ExecuteAsync(async cancel =>
            {
                var request = new HttpRequestMessage(method, current);
                request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
                if (range is not null)
                {
                    request.Headers.Range = range;
                }
                if (accessToken is not null && IsSameOrigin(current))
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", this.TokenValue);
                }
                // a server that accepts and never answers: the stall timeout, not a 5-minute wait per attempt
                using var headers = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                headers.CancelAfter(Settings.StallTimeout);
                try
                {
                    return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, headers.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    throw new TimeoutException(NoData(current, Settings.StallTimeout)); // retried like any network error
                }
            }, ct).ConfigureAwait(false);
            first ??= ReadResolveHeaders(response);
            int status = (int)response.StatusCode;
            if (status is not (301 or 302 or 303 or 307 or 308))
            {
                return new HubResponse(response, current, first);
            }
            var location = response.Headers.Location;
            response.Dispose();
            if (location is null)
            {
                throw new HubException($"{method} {Redactor.Url(current)}: {status} redirect without Location");
            }
            var next = location.IsAbsoluteUri ? location : new Uri(current, location);
            if (current.Scheme == "https" && next.Scheme != "https")
            {
                throw new HubException($"{method} {Redactor.Url(current)}: refusing redirect from https to {next.Scheme}");
            }
            if (hop >= MaxRedirects)
            {
                throw new HubException($"{method} {Redactor.Url(url)}: more than {MaxRedirects} redirects");
            }
            logger.LogDebug("redirect {Status} → {Url}{Auth}", status, Redactor.Url(next), IsSameOrigin(next) && accessToken is not null ? " (same origin: token kept)" : "");
            url = next;
        }
    }

    private string TokenValue => accessToken!;

    /// <summary>The one line for a stall: <c>no data from URL for N s (timeout)</c> (URL redacted).</summary>
    public static string NoData(Uri url, TimeSpan stallTimeout) => $"no data from {Redactor.Url(url)} for {stallTimeout.TotalSeconds:0} s (timeout)";

    private static ResolveHeaders ReadResolveHeaders(HttpResponseMessage r)
    {
        string? commit = Header(r, "X-Repo-Commit");
        string? etag = NormalizeEtag(Header(r, "X-Linked-Etag") ?? r.Headers.ETag?.ToString() ?? Header(r, "ETag"));
        long? size = long.TryParse(Header(r, "X-Linked-Size"), out var s) ? s : null;
        return new ResolveHeaders(commit, etag, size);
    }

    /// <summary>An etag without W/ and quotes (git sha1 for small files, sha256 for LFS files).</summary>
    public static string? NormalizeEtag(string? etag)
    {
        if (string.IsNullOrWhiteSpace(etag))
        {
            return null;
        }
        etag = etag.Trim();
        if (etag.StartsWith("W/", StringComparison.Ordinal))
        {
            etag = etag[2..];
        }
        return etag.Trim('"');
    }

    public static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : null;

    /// <summary>Throws one clear line for a non-2xx answer, naming the Hub's error code and what to do.</summary>
    public async Task EnsureSuccessAsync(HttpResponseMessage response, HttpMethod method, Uri url, CancellationToken ct, string? what = null)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        string? code = Header(response, "X-Error-Code");
        string? message = Header(response, "X-Error-Message");
        string? body = null;
        try
        {
            body = await ReadSmallBodyAsync(response, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or HttpRequestException or TimeoutException)
        {
        }
        if (message is null && body is { Length: > 0 })
        {
            message = ErrorFromJson(body) ?? (body.TrimStart().StartsWith('<') ? null : body);
        }
        if (Header(response, "X-Request-Id") is { } requestId)
        {
            message = message is null ? $"request id {requestId}" : $"{message} (request id {requestId})";
        }
        int status = (int)response.StatusCode;
        string? hint = null;
        HubReason? reason = null;
        if (code == "GatedRepo")
        {
            reason = HubReason.GatedRepo;
            hint = "the repo is gated: set HF_TOKEN to a token of an account that accepted the repo's terms on its Hub page";
        }
        else if (message is not null && message.Contains("Invalid credentials", StringComparison.OrdinalIgnoreCase) || (status == 401 && code is null && HasToken))
        {
            code ??= "InvalidToken";
            reason = HubReason.InvalidToken;
            hint = "the token is invalid or expired";
        }
        else if (code == "RepoNotFound" || (status == 401 && code is null))
        {
            reason = HubReason.RepoNotFound;
            hint = HasToken ? "check the repo id and type, and that the token can read it" : "check the repo id and type; a private repo needs HF_TOKEN";
        }
        else if (code == "RevisionNotFound")
        {
            reason = HubReason.RevisionNotFound;
            hint = "check the revision (branch, tag, refs/pr/N or commit)";
        }
        else if (code == "EntryNotFound")
        {
            hint = what is null ? "the file is not in this revision" : $"'{what}' is not in this revision";
        }
        else if (status == 403 && message is not null && message.Contains("disabled", StringComparison.OrdinalIgnoreCase))
        {
            code ??= "DisabledRepo";
            hint = "the repo is disabled on the Hub";
        }
        throw new HttpFailureException(method, url, response.StatusCode, response.ReasonPhrase, code, message, hint, reason);
    }

    private static string? ErrorFromJson(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String
                ? e.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static async Task<string> ReadSmallBodyAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[4096];
        int total = 0, n;
        while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false)) > 0)
        {
            total += n;
        }
        return Encoding.UTF8.GetString(buffer, 0, total).Trim();
    }

    private async Task<T> ReadJsonAsync<T>(HttpResponseMessage response, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info, Uri url, CancellationToken ct, ReadBudget? budget = null)
    {
        try
        {
            var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            await using var raw = budget is null ? body : budget.Wrap(body);
            await using var stream = new ModelCar.Common.IO.StallTimeoutStream(raw, Settings.StallTimeout, NoData(url, Settings.StallTimeout));
            return await JsonSerializer.DeserializeAsync(stream, info, ct).ConfigureAwait(false)
                ?? throw new HubException($"GET {Redactor.Url(url)}: answer is JSON null");
        }
        catch (JsonException e)
        {
            throw new HubException($"GET {Redactor.Url(url)}: answer is not the expected JSON: {e.Message}");
        }
    }

    /// <summary>The target of a Link header's rel="next" entry, or null.</summary>
    public static string? NextLink(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Link", out var values))
        {
            return null;
        }
        foreach (Match m in LinkEntry().Matches(string.Join(",", values)))
        {
            var rels = m.Groups[2].Value.Trim('"').Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (rels.Contains("next", StringComparer.OrdinalIgnoreCase))
            {
                return m.Groups[1].Value;
            }
        }
        return null;
    }

    public static bool IsHex(string s, int length) => s.Length == length && s.All(char.IsAsciiHexDigit);

    [GeneratedRegex(@"<([^>]*)>[^,<]*?;\s*rel\s*=\s*(""[^""]*""|[^;,\s]+)")]
    private static partial Regex LinkEntry();
}
