using System.Net;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Flurl.Http;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.Logging;
using Polly;

namespace ModelCar.ModelRegistry;

/// <summary>Where the bearer token came from, for error messages (never the token itself).</summary>
public sealed record TokenSource(string Token, string File, string How);

/// <summary>One answer, body already read (bodies here are small JSON documents).</summary>
public sealed record RegistryResponse(HttpMethod Method, Uri Url, HttpStatusCode Status, string? Reason, string Body, string? MediaType)
{
    public bool IsSuccess => (int)Status is >= 200 and < 300;

    /// <summary>The server's <c>{code,message}</c>, or the plain text (kube-rbac-proxy) as message.</summary>
    public ErrorBody Error()
    {
        if (Body.TrimStart().StartsWith('{'))
        {
            try
            {
                if (JsonSerializer.Deserialize(Body, ModelRegistryJson.Default.ErrorBody) is { } e)
                {
                    return e;
                }
            }
            catch (JsonException)
            {
            }
        }
        return new ErrorBody { Code = null, Message = Body.Trim() };
    }
}

/// <summary>
/// Thin HTTP client for the Model Registry REST API v1alpha3: Flurl (source-generated JSON via
/// <see cref="FlurlSetup"/>), every request inside the shared Polly pipeline (503 and network
/// errors retried), Bearer auth, errors as one line with the server's code and message.
/// Writes can be switched to "dry run": they are described to a callback instead of being sent.
/// </summary>
public sealed class ModelRegistryClient : IDisposable
{
    public const string ApiPath = "/api/model_registry/v1alpha3";
    public const int PageSize = 100;

    private readonly IFlurlClient _flurl;
    private readonly ResiliencePipeline<HttpResponseMessage> _retry;
    private readonly TokenSource? _token;
    private readonly ILogger _logger;

    public ModelRegistryClient(HttpClient http, Uri server, TokenSource? token, ResiliencePipeline<HttpResponseMessage> retry, ILogger logger)
    {
        BaseUrl = BaseUrlFor(server);
        _flurl = FlurlSetup.Create(http, ModelRegistryJson.Default, BaseUrl);
        _retry = retry;
        _token = token;
        _logger = logger;
    }

    public string BaseUrl { get; }

    /// <summary>When set, POST/PATCH are not sent: the callback gets method, path and body.</summary>
    public Action<string>? DryRun { get; set; }

    /// <summary>The server URL plus the API prefix (kept if the user already gave it).</summary>
    public static string BaseUrlFor(Uri server)
    {
        var s = server.GetLeftPart(UriPartial.Path).TrimEnd('/');
        return s.EndsWith(ApiPath, StringComparison.Ordinal) ? s : s + ApiPath;
    }

    // ---- registered models ----

    /// <summary>GET /registered_model?name=: the model with exactly this name, or null (404, or a LIKE look-alike).</summary>
    public async Task<RegisteredModel?> FindModelAsync(string name, CancellationToken ct)
    {
        var r = await GetAsync(["registered_model"], [("name", name)], ct);
        if (r.Status == HttpStatusCode.NotFound)
        {
            return null;
        }
        var model = Read(r, ModelRegistryJson.Default.RegisteredModel);
        if (model.Name != name)
        {
            _logger.LogDebug("registered model lookup for '{Name}' matched '{Other}' (id {Id}): SQL LIKE look-alike, ignored", name, model.Name, model.Id);
            return null;
        }
        return model;
    }

    /// <summary>Pages through GET /registered_models and keeps only the exact name (the 404 "several" fallback).</summary>
    public async Task<RegisteredModel?> FindModelByListingAsync(string name, CancellationToken ct)
    {
        string? token = null;
        do
        {
            var query = PageQuery(token);
            var r = await GetAsync(["registered_models"], query, ct);
            var page = Read(r, ModelRegistryJson.Default.ListPageRegisteredModel);
            if (page.Items?.FirstOrDefault(m => m.Name == name) is { } found)
            {
                return found;
            }
            token = NextToken(page.NextPageToken, token, page.Items?.Count ?? 0);
        }
        while (token is not null);
        return null;
    }

    /// <summary>POST /registered_models. Null when the name already exists (409, or 500 with code "" from old servers).</summary>
    public Task<RegisteredModel?> CreateModelAsync(RegisteredModelCreate body, CancellationToken ct) =>
        CreateAsync(["registered_models"], body, ModelRegistryJson.Default.RegisteredModelCreate, ModelRegistryJson.Default.RegisteredModel, ct);

    // ---- model versions ----

    /// <summary>GET /model_version?name=&amp;parentResourceId=: exactly this name under this model, or null.</summary>
    public async Task<ModelVersion?> FindVersionAsync(string registeredModelId, string name, CancellationToken ct)
    {
        var r = await GetAsync(["model_version"], [("name", name), ("parentResourceId", registeredModelId)], ct);
        if (r.Status == HttpStatusCode.NotFound)
        {
            return null;
        }
        var version = Read(r, ModelRegistryJson.Default.ModelVersion);
        if (version.Name != name || (version.RegisteredModelId is { } p && p != registeredModelId))
        {
            _logger.LogDebug("model version lookup for '{Name}' matched '{Other}' (id {Id}): SQL LIKE look-alike, ignored", name, version.Name, version.Id);
            return null;
        }
        return version;
    }

    /// <summary>Pages through GET /registered_models/{id}/versions?name= and keeps only the exact name.</summary>
    public async Task<ModelVersion?> FindVersionByListingAsync(string registeredModelId, string name, CancellationToken ct)
    {
        string? token = null;
        do
        {
            var query = new List<(string, string)> { ("name", name) };
            query.AddRange(PageQuery(token));
            var r = await GetAsync(["registered_models", registeredModelId, "versions"], query, ct);
            var page = Read(r, ModelRegistryJson.Default.ListPageModelVersion);
            if (page.Items?.FirstOrDefault(v => v.Name == name) is { } found)
            {
                return found;
            }
            token = NextToken(page.NextPageToken, token, page.Items?.Count ?? 0);
        }
        while (token is not null);
        return null;
    }

    /// <summary>POST /model_versions. Null when the name already exists under that model.</summary>
    public Task<ModelVersion?> CreateVersionAsync(ModelVersionCreate body, CancellationToken ct) =>
        CreateAsync(["model_versions"], body, ModelRegistryJson.Default.ModelVersionCreate, ModelRegistryJson.Default.ModelVersion, ct);

    // ---- model artifacts ----

    /// <summary>GET /model_versions/{id}/artifacts?artifactType=model-artifact, oldest first (the deploy flow reads the first).</summary>
    public async Task<List<ModelArtifact>> ListArtifactsAsync(string versionId, CancellationToken ct)
    {
        var all = new List<ModelArtifact>();
        string? token = null;
        do
        {
            var query = new List<(string, string)> { ("artifactType", ModelArtifact.Type) };
            query.AddRange(PageQuery(token));
            var r = await GetAsync(["model_versions", versionId, "artifacts"], query, ct);
            var page = Read(r, ModelRegistryJson.Default.ListPageModelArtifact);
            all.AddRange(page.Items ?? []);
            token = NextToken(page.NextPageToken, token, page.Items?.Count ?? 0);
        }
        while (token is not null);
        return all;
    }

    /// <summary>POST /model_versions/{id}/artifacts (no id in the body: create). Null on a duplicate name.</summary>
    public Task<ModelArtifact?> CreateArtifactAsync(string versionId, ModelArtifactCreate body, CancellationToken ct) =>
        CreateAsync(["model_versions", versionId, "artifacts"], body, ModelRegistryJson.Default.ModelArtifactCreate, ModelRegistryJson.Default.ModelArtifact, ct);

    /// <summary>PATCH /model_artifacts/{id}: overlays the fields sent (customProperties replaces the whole map).</summary>
    public async Task<ModelArtifact?> UpdateArtifactAsync(string artifactId, ModelArtifactUpdate body, CancellationToken ct)
    {
        var json = JsonSerializer.Serialize(body, ModelRegistryJson.Default.ModelArtifactUpdate);
        var r = await SendAsync(HttpMethod.Patch, ["model_artifacts", artifactId], [], json, ct);
        return r is null ? null : Read(r, ModelRegistryJson.Default.ModelArtifact);
    }

    // ---- plumbing ----

    private async Task<RegistryResponse> GetAsync(string[] path, IReadOnlyList<(string Name, string Value)> query, CancellationToken ct) =>
        (await SendAsync(HttpMethod.Get, path, query, null, ct))!;

    private async Task<TOut?> CreateAsync<TIn, TOut>(string[] path, TIn body, JsonTypeInfo<TIn> inInfo, JsonTypeInfo<TOut> outInfo, CancellationToken ct)
        where TOut : class
    {
        var json = JsonSerializer.Serialize(body, inInfo);
        var r = await SendAsync(HttpMethod.Post, path, [], json, ct, isCreate: true);
        if (r is null)
        {
            return null; // dry run
        }
        if (IsDuplicate(r))
        {
            _logger.LogDebug("POST {Path}: {Status} {Code}: already exists, looking it up again", string.Join('/', path), (int)r.Status, r.Error().Code);
            return null;
        }
        return Read(r, outInfo);
    }

    /// <summary>409, or 500 with code "" (servers before v0.2.15 answered duplicates that way).</summary>
    public static bool IsDuplicate(RegistryResponse r) =>
        r.Status == HttpStatusCode.Conflict || (r.Status == HttpStatusCode.InternalServerError && string.IsNullOrEmpty(r.Error().Code));

    private static List<(string, string)> PageQuery(string? token)
    {
        var q = new List<(string, string)> { ("pageSize", PageSize.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("orderBy", "ID"), ("sortOrder", "ASC") };
        if (!string.IsNullOrEmpty(token))
        {
            q.Add(("nextPageToken", token));
        }
        return q;
    }

    private static string? NextToken(string? next, string? previous, int count) =>
        string.IsNullOrEmpty(next) || next == previous || count == 0 ? null : next;

    private T Read<T>(RegistryResponse? r, JsonTypeInfo<T> info)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (!r.IsSuccess)
        {
            throw Failure(r);
        }
        try
        {
            return JsonSerializer.Deserialize(r.Body, info) ?? throw new JsonException("null document");
        }
        catch (JsonException e)
        {
            throw new ModelRegistryException($"{r.Method} {Redactor.Url(r.Url)}: {(int)r.Status} with an unreadable body ({e.Message})");
        }
    }

    /// <summary>The one-line error for an unexpected answer; 401/403 name the token file used.</summary>
    public HttpFailureException Failure(RegistryResponse r)
    {
        var error = r.Error();
        string? hint = null;
        ModelRegistryReason? reason = null;
        if (r.Status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            reason = _token is null ? ModelRegistryReason.NoToken : null;
            hint = _token is null
                ? "no token was sent: set KF_PIPELINES_SA_TOKEN_PATH, or run in a pod with a service-account token"
                : $"token from file '{_token.File}' ({_token.How}); it must be allowed 'get' on the registry's service";
        }
        return new HttpFailureException(r.Method, r.Url, r.Status, r.Reason, error.Code, error.Message, hint, reason);
    }

    /// <summary>
    /// Sends one request through the retry pipeline. Returns null for a write in dry-run mode. A 500
    /// with an empty code on a create is a duplicate on old servers: it is returned at once, not retried.
    /// </summary>
    private async Task<RegistryResponse?> SendAsync(HttpMethod method, string[] path, IReadOnlyList<(string Name, string Value)> query, string? body, CancellationToken ct, bool isCreate = false)
    {
        var request = _flurl.Request(path);
        foreach (var (name, value) in query)
        {
            request.SetQueryParam(name, value);
        }
        var url = new Uri(request.Url.ToString());
        if (method != HttpMethod.Get && DryRun is { } dry)
        {
            dry($"{method.Method} {url.PathAndQuery}{(body is null ? "" : " " + body)}");
            return null;
        }
        _logger.LogDebug("{Method} {Url}{Body}", method.Method, Redactor.Url(url), body is null ? "" : " " + body);
        request.WithHeader("Accept", "application/json");
        if (_token is not null)
        {
            request.WithOAuthBearerToken(_token.Token);
        }

        HttpResponseMessage response;
        try
        {
            response = await _retry.ExecuteAsync(async token =>
            {
                using var content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json");
                IFlurlResponse flurlResponse;
                try
                {
                    flurlResponse = await request.SendAsync(method, content, HttpCompletionOption.ResponseContentRead, token);
                }
                catch (FlurlHttpException e) when (e.InnerException is not null)
                {
                    ExceptionDispatchInfo.Capture(e.InnerException).Throw(); // HttpRequestException/IOException: the retry policy knows these
                    throw;
                }
                var message = flurlResponse.ResponseMessage;
                if (isCreate && message.StatusCode == HttpStatusCode.InternalServerError)
                {
                    var text = await message.Content.ReadAsStringAsync(token);
                    var candidate = new RegistryResponse(method, url, message.StatusCode, message.ReasonPhrase, text, null);
                    if (IsDuplicate(candidate))
                    {
                        message.Dispose();
                        throw new DuplicateAnswer(candidate); // a ModelCarException: never retried
                    }
                }
                return message;
            }, ct);
        }
        catch (DuplicateAnswer d)
        {
            return d.Response;
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            var r = new RegistryResponse(method, url, response.StatusCode, response.ReasonPhrase, text, response.Content.Headers.ContentType?.MediaType);
            _logger.LogDebug("{Method} {Url}: {Status}", method.Method, Redactor.Url(url), (int)r.Status);
            return r;
        }
    }

    private sealed class DuplicateAnswer(RegistryResponse response) : ModelRegistryException("duplicate")
    {
        public RegistryResponse Response { get; } = response;
    }

    public void Dispose() => _flurl.Dispose();
}
