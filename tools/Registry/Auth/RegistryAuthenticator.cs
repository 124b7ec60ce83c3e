using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.Logging;

namespace ModelCar.Registry.Auth;

/// <summary>
/// Authorization for one registry host: Basic, or the Bearer token flow (realm/service/scope from
/// <c>WWW-Authenticate</c>, token fetched with the credentials, cached per scope until
/// <c>expires_in</c>). After a 401 the cached token is dropped and, if asked, the credentials are
/// read again (a rotated password/token file), so a long push survives an expired token.
/// </summary>
public sealed class RegistryAuthenticator
{
    private static readonly TimeSpan ExpiryMargin = TimeSpan.FromSeconds(10);
    private readonly HttpClient _http;
    private readonly string _registry;
    private readonly Func<bool, Credential?> _credentials;
    private readonly bool _allowHttpRealm;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, (string Token, DateTimeOffset Expires)> _tokens = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _lock = new(1, 1);
    private Credential? _credential;
    private bool _credentialLoaded;
    private Challenge? _challenge;

    /// <param name="credentials">Called with false for the first lookup and true to read them again.</param>
    public RegistryAuthenticator(HttpClient http, string registry, Func<bool, Credential?> credentials, bool allowHttpRealm, ILogger logger)
    {
        _http = http;
        _registry = registry;
        _credentials = credentials;
        _allowHttpRealm = allowHttpRealm;
        _logger = logger;
    }

    public Challenge? Challenge => _challenge;

    /// <summary>How many token requests were sent (tests and logs).</summary>
    public int TokenRequests => _tokenRequests;

    private int _tokenRequests;

    public void SetChallenge(Challenge? challenge)
    {
        if (challenge is not null)
        {
            _challenge = challenge;
        }
    }

    private Credential? CurrentCredential()
    {
        if (!_credentialLoaded)
        {
            _credential = _credentials(false);
            _credentialLoaded = true;
        }
        return _credential;
    }

    /// <summary>The Authorization header for a request needing <paramref name="scope"/>; null while no challenge is known.</summary>
    public async Task<AuthenticationHeaderValue?> HeaderForAsync(string scope, CancellationToken ct)
    {
        var challenge = _challenge;
        if (challenge is null)
        {
            return null;
        }
        if (challenge.IsBasic)
        {
            var cred = CurrentCredential();
            return cred is null ? null : new AuthenticationHeaderValue("Basic", cred.BasicHeaderValue);
        }
        if (!challenge.IsBearer)
        {
            return null;
        }
        if (_tokens.TryGetValue(scope, out var cached) && cached.Expires > DateTimeOffset.UtcNow)
        {
            return new AuthenticationHeaderValue("Bearer", cached.Token);
        }
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_tokens.TryGetValue(scope, out cached) && cached.Expires > DateTimeOffset.UtcNow)
            {
                return new AuthenticationHeaderValue("Bearer", cached.Token);
            }
            var (token, expires) = await FetchTokenAsync(challenge, scope, ct).ConfigureAwait(false);
            _tokens[scope] = (token, expires);
            return new AuthenticationHeaderValue("Bearer", token);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// After a 401: remember the new challenge, drop the token for this scope, and with
    /// <paramref name="reloadCredentials"/> read the credentials again.
    /// </summary>
    public void OnUnauthorized(HttpResponseMessage response, string scope, bool reloadCredentials)
    {
        SetChallenge(Auth.Challenge.From(response));
        _tokens.TryRemove(scope, out _);
        if (reloadCredentials)
        {
            var fresh = _credentials(true);
            if (fresh is not null)
            {
                _credential = fresh;
                _credentialLoaded = true;
            }
            _logger.LogWarning("{Registry}: 401 Unauthorized in the middle of the push; credentials {What}, authenticating again", _registry,
                fresh is null ? "unchanged" : "re-read");
        }
    }

    /// <summary>A token answer is a small JSON object: at most this many bytes are read (a server sending more is refused).</summary>
    public const int MaxTokenResponseBytes = 1 << 20;

    /// <summary>Reads the token endpoint's body, refusing one larger than <see cref="MaxTokenResponseBytes"/> (never held whole).</summary>
    private async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, Uri realm, CancellationToken ct)
    {
        if (response.Content.Headers.ContentLength is > MaxTokenResponseBytes)
        {
            throw TooLarge();
        }
        await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[MaxTokenResponseBytes + 1];
        int total = 0;
        int n;
        while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false)) > 0)
        {
            total += n;
        }
        if (total > MaxTokenResponseBytes)
        {
            throw TooLarge();
        }
        return buffer.AsSpan(0, total).ToArray();

        RegistryException TooLarge() =>
            new($"{_registry}: the token endpoint {Redactor.Url(realm)} answered with more than {MaxTokenResponseBytes / 1024 / 1024} MiB (a token is a small JSON object)");
    }

    private async Task<(string Token, DateTimeOffset Expires)> FetchTokenAsync(Challenge challenge, string scope, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(challenge.Realm) || !Uri.TryCreate(challenge.Realm, UriKind.Absolute, out var realm) || realm.Scheme is not ("https" or "http"))
        {
            throw new RegistryException($"{_registry}: the registry's Bearer challenge has no usable realm ('{challenge.Realm}')");
        }
        if (realm.Scheme == "http" && !_allowHttpRealm)
        {
            throw new RegistryException($"{_registry}: refusing to send credentials to the plain-http token realm {realm.GetLeftPart(UriPartial.Path)} (allowed only when TLS verification is off)", reason: RegistryReason.PlainHttpTokenRealm);
        }
        var cred = CurrentCredential();
        var scopes = scope.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Interlocked.Increment(ref _tokenRequests);
        HttpRequestMessage request;
        if (cred?.IdentityToken is { Length: > 0 } refresh)
        {
            var form = new List<KeyValuePair<string, string>>
            {
                new("grant_type", "refresh_token"),
                new("refresh_token", refresh),
                new("client_id", "modelcar-tools"),
            };
            if (challenge.Service is { } svc)
            {
                form.Add(new("service", svc));
            }
            foreach (var s in scopes)
            {
                form.Add(new("scope", s));
            }
            request = new HttpRequestMessage(HttpMethod.Post, realm) { Content = new FormUrlEncodedContent(form) };
        }
        else
        {
            var query = new List<string>();
            if (challenge.Service is { } svc)
            {
                query.Add("service=" + Uri.EscapeDataString(svc));
            }
            foreach (var s in scopes)
            {
                query.Add("scope=" + Uri.EscapeDataString(s));
            }
            var builder = new UriBuilder(realm);
            var existing = builder.Query.TrimStart('?');
            builder.Query = string.Join('&', new[] { existing }.Where(e => e.Length > 0).Concat(query));
            request = new HttpRequestMessage(HttpMethod.Get, builder.Uri);
            if (cred is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", cred.BasicHeaderValue);
            }
        }
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var refused = response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden;
            var hint = refused ? (cred is null ? "no credentials found for " + _registry : "wrong user name or password?") : null;
            throw await RegistryErrors.ToExceptionAsync(response, ct, hint, refused && cred is null ? RegistryReason.MissingCredentials : null).ConfigureAwait(false);
        }
        var body = await ReadBoundedAsync(response, realm, ct).ConfigureAwait(false);
        TokenResponse parsed;
        try
        {
            parsed = JsonSerializer.Deserialize(body, RegistryJsonContext.Default.TokenResponse) ?? new TokenResponse();
        }
        catch (JsonException)
        {
            throw new RegistryException($"{_registry}: the token endpoint {Redactor.Url(realm)} did not answer with JSON");
        }
        var token = !string.IsNullOrEmpty(parsed.Token) ? parsed.Token : parsed.AccessToken;
        if (string.IsNullOrEmpty(token))
        {
            throw new RegistryException($"{_registry}: the token endpoint {Redactor.Url(realm)} returned no token");
        }
        Redactor.AddSecret(token);
        Redactor.AddSecret(parsed.RefreshToken);
        int seconds = parsed.ExpiresIn is { } e && e >= 60 ? e : 60;
        var issued = DateTimeOffset.TryParse(parsed.IssuedAt, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at) && at <= DateTimeOffset.UtcNow
            ? at
            : DateTimeOffset.UtcNow;
        _logger.LogDebug("{Registry}: token for '{Scope}' valid {Seconds} s", _registry, scope, seconds);
        return (token, issued + TimeSpan.FromSeconds(seconds) - ExpiryMargin);
    }
}
