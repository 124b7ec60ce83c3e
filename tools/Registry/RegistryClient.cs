using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.Logging;
using ModelCar.Registry.Auth;
using Polly;

namespace ModelCar.Registry;

/// <summary>
/// The HTTP layer for one registry host: scheme discovery (<c>GET /v2/</c>; https, or http when TLS
/// verification is off and https fails, like skopeo), authorization (<see cref="RegistryAuthenticator"/>),
/// retries of temporary failures (Common's HttpRetry), one re-authentication after a 401, and
/// redirects followed by hand without credentials on other hosts.
/// </summary>
public sealed class RegistryClient
{
    private readonly HttpClient _http;
    private readonly HttpSettings _settings;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline<HttpResponseMessage> _retry;
    private readonly SemaphoreSlim _pingLock = new(1, 1);
    private readonly ICredentialProvider _credentials;
    private Uri? _baseUri;
    private long _requests;

    public RegistryClient(string registry, HttpClient http, HttpSettings settings, ICredentialProvider credentials, ILogger logger)
    {
        Registry = registry;
        ApiHost = registry == Oci.RegistryReference.DockerHub ? "registry-1.docker.io" : registry;
        _http = http;
        _settings = settings;
        _logger = logger;
        _credentials = credentials;
        _retry = HttpRetry.Create(settings, logger);
        Auth = new RegistryAuthenticator(http, registry, reload => reload ? credentials.Refresh(registry, AuthRepository) : credentials.Get(registry, AuthRepository),
            allowHttpRealm: !settings.TlsVerify, logger);
    }

    public string Registry { get; }

    public string ApiHost { get; }

    public RegistryAuthenticator Auth { get; }

    public HttpSettings Settings => _settings;

    public ILogger Logger => _logger;

    /// <summary>The repository whose credentials are used (auth.json keys can be per repository).</summary>
    public string AuthRepository { get; set; } = string.Empty;

    /// <summary>Requests sent to the registry (for the summary line and tests).</summary>
    public long RequestCount => Interlocked.Read(ref _requests);

    public Uri BaseUri => _baseUri ?? throw new InvalidOperationException("PingAsync first");

    /// <summary>Skips discovery when the scheme is known (the challenge is then learned from the first 401).</summary>
    public void UseBaseUri(Uri baseUri) => _baseUri = baseUri;

    /// <summary>
    /// <c>GET /v2/</c>: picks https or (TLS verification off) http, and learns the auth challenge.
    /// A network failure here is the "registry unreachable" error.
    /// </summary>
    public async Task PingAsync(CancellationToken ct)
    {
        if (_baseUri is not null)
        {
            return;
        }
        await _pingLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_baseUri is not null)
            {
                return;
            }
            var https = new Uri($"https://{ApiHost}/");
            Exception? httpsError = null;
            try
            {
                // one plain attempt first: a TLS failure is not worth retrying
                await PingAtAsync(https, retry: false, ct).ConfigureAwait(false);
                _baseUri = https;
                return;
            }
            catch (Exception e) when (IsNetworkError(e, ct))
            {
                httpsError = e;
            }
            bool tlsFailure = IsTlsFailure(httpsError);
            if (!tlsFailure)
            {
                try
                {
                    await PingAtAsync(https, retry: true, ct).ConfigureAwait(false);
                    _baseUri = https;
                    return;
                }
                catch (Exception e) when (IsNetworkError(e, ct))
                {
                    httpsError = e;
                }
            }
            if (!_settings.TlsVerify)
            {
                var http = new Uri($"http://{ApiHost}/");
                try
                {
                    await PingAtAsync(http, retry: tlsFailure, ct).ConfigureAwait(false);
                    _baseUri = http;
                    _logger.LogDebug("{Registry}: using plain http (https failed: {Error})", Registry, ErrorText.Describe(httpsError));
                    return;
                }
                catch (Exception e) when (IsNetworkError(e, ct))
                {
                    throw new RegistryException($"registry {Registry} is unreachable: https: {ErrorText.Describe(httpsError)}; http: {ErrorText.Describe(e)}", e);
                }
            }
            bool tls = IsTlsFailure(httpsError);
            throw new RegistryException($"registry {Registry} is unreachable: {ErrorText.Describe(httpsError)}{(tls ? " (TLS verification failed)" : string.Empty)}", httpsError,
                transient: !tls, reason: tls ? RegistryReason.UntrustedCertificate : null);
        }
        finally
        {
            _pingLock.Release();
        }
    }

    private static bool IsNetworkError(Exception e, CancellationToken ct) =>
        e is HttpRequestException or IOException or TimeoutException or System.Security.Authentication.AuthenticationException
        || (e is OperationCanceledException && !ct.IsCancellationRequested);

    private static bool IsTlsFailure(Exception? e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is System.Security.Authentication.AuthenticationException || x is HttpRequestException { HttpRequestError: HttpRequestError.SecureConnectionError })
            {
                return true;
            }
        }
        return false;
    }

    private async Task PingAtAsync(Uri baseUri, bool retry, CancellationToken ct)
    {
        var url = new Uri(baseUri, "/v2/");
        var pipeline = retry ? _retry : Polly.ResiliencePipeline<HttpResponseMessage>.Empty;
        using var response = await pipeline.ExecuteAsync(async token =>
        {
            Interlocked.Increment(ref _requests);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
            timeout.CancelAfter(_settings.ConnectTimeout + TimeSpan.FromSeconds(30));
            return await _http.SendAsync(new HttpRequestMessage(HttpMethod.Get, url), HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            Auth.SetChallenge(Challenge.From(response));
            return;
        }
        if (!response.IsSuccessStatusCode)
        {
            throw await RegistryErrors.ToExceptionAsync(response, ct, "is this a registry (distribution API v2)?").ConfigureAwait(false);
        }
    }

    public Uri Url(string pathAndQuery) => new(BaseUri, pathAndQuery);

    /// <summary>
    /// Sends a request built by <paramref name="create"/> (called again for every attempt, so bodies
    /// are re-opened), with authorization for <paramref name="scope"/>. A 401 leads to one new
    /// handshake (credentials re-read) and one resend; a second 401 is returned to the caller.
    /// With <paramref name="retry"/>, temporary failures are retried (HttpRetry).
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> create, string scope, CancellationToken ct, bool retry = true)
    {
        if (!retry)
        {
            return await SendAuthorizedAsync(create, scope, ct).ConfigureAwait(false);
        }
        return await _retry.ExecuteAsync(async token => await SendAuthorizedAsync(create, scope, token).ConfigureAwait(false), ct).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> SendAuthorizedAsync(Func<HttpRequestMessage> create, string scope, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            var request = create();
            // credentials only for the registry's own origin: an upload Location may name any host (issue 21)
            bool own = IsOwnOrigin(request.RequestUri);
            request.Headers.Authorization = own ? await Auth.HeaderForAsync(scope, ct).ConfigureAwait(false) : null;
            if (!own)
            {
                WarnForeignOnce(request);
            }
            Interlocked.Increment(ref _requests);
            HttpResponseMessage response;
            bool small = request.Content is null or ByteArrayContent;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                if (small)
                {
                    timeout.CancelAfter(_settings.HeadersTimeout);
                }
                try
                {
                    response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
                {
                    throw new TimeoutException($"{request.Method} {Redactor.Url(request.RequestUri)}: no answer in {_settings.HeadersTimeout.TotalSeconds:0} s", e);
                }
            }
            if (response.StatusCode != HttpStatusCode.Unauthorized || attempt >= 1 || !own)
            {
                return response; // another origin's challenge is not the registry's: no handshake for it
            }
            bool hadAuthorization = request.Headers.Authorization is not null;
            if (!hadAuthorization && Challenge.From(response) is null)
            {
                return response;
            }
            Auth.OnUnauthorized(response, scope, reloadCredentials: hadAuthorization);
            response.Dispose();
        }
    }

    /// <summary>
    /// True when <paramref name="url"/> has the registry's origin (scheme, host and port): only such
    /// requests carry Authorization. Anything else (an upload <c>Location</c> or a redirect to another
    /// host, port or scheme) is followed without credentials.
    /// </summary>
    public bool IsOwnOrigin(Uri? url) => url is { IsAbsoluteUri: true } && _baseUri is { } own
        && Uri.Compare(url, own, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;

    private int _foreignWarned;

    private void WarnForeignOnce(HttpRequestMessage request)
    {
        if (Interlocked.Exchange(ref _foreignWarned, 1) == 0)
        {
            _logger.LogWarning("{Registry}: the registry sent us to another origin ({Origin}); following it without credentials",
                Registry, request.RequestUri?.GetLeftPart(UriPartial.Authority));
        }
    }

    /// <summary>
    /// GET following redirects by hand (blob downloads go to CDNs): the Authorization header is
    /// only sent to the registry itself, never to another host.
    /// </summary>
    public async Task<HttpResponseMessage> GetFollowingRedirectsAsync(Uri url, string scope, string? accept, CancellationToken ct)
    {
        var response = await SendAsync(() => Get(url, accept), scope, ct).ConfigureAwait(false);
        var current = url;
        for (int hop = 0; hop < 10 && IsRedirect(response.StatusCode); hop++)
        {
            var location = response.Headers.Location ?? throw new RegistryException($"GET {Redactor.Url(current)}: {(int)response.StatusCode} redirect without Location");
            var next = new Uri(current, location);
            response.Dispose();
            if (next.Scheme == "http" && current.Scheme == "https" && _settings.TlsVerify)
            {
                throw new RegistryException($"GET {Redactor.Url(current)}: refusing a redirect from https to plain http ({Redactor.Url(next)})");
            }
            bool sameHost = Uri.Compare(next, BaseUri, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
            var target = next;
            response = sameHost
                ? await SendAsync(() => Get(target, accept), scope, ct).ConfigureAwait(false)
                : await _retry.ExecuteAsync(async token =>
                {
                    Interlocked.Increment(ref _requests);
                    return await _http.SendAsync(Get(target, accept), HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false);
                }, ct).ConfigureAwait(false);
            current = next;
        }
        return response;
    }

    private static HttpRequestMessage Get(Uri url, string? accept)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (accept is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept", accept);
        }
        return request;
    }

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found
        or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    /// <summary>Resolves an upload <c>Location</c> (absolute or relative) against the request URL, keeping its query.</summary>
    public static Uri ResolveLocation(Uri requestUri, HttpResponseMessage response)
    {
        var location = response.Headers.Location
            ?? (response.Headers.TryGetValues("Location", out var v) ? new Uri(v.First(), UriKind.RelativeOrAbsolute) : null)
            ?? throw new RegistryException($"{response.RequestMessage?.Method} {Redactor.Url(requestUri)}: {(int)response.StatusCode} without a Location header");
        return location.IsAbsoluteUri ? location : new Uri(requestUri, location);
    }

    /// <summary>Adds <c>name=value</c> to a URL that may already carry a query (upload state tokens).</summary>
    public static Uri WithQuery(Uri url, string name, string value)
    {
        var builder = new UriBuilder(url);
        var q = builder.Query.TrimStart('?');
        builder.Query = (q.Length > 0 ? q + "&" : string.Empty) + name + "=" + Uri.EscapeDataString(value);
        return builder.Uri;
    }

    public static string PushScope(string repository) => $"repository:{repository}:pull,push";

    public static string PullScope(string repository) => $"repository:{repository}:pull";

    public static MediaTypeHeaderValue OctetStream => new("application/octet-stream");
}
