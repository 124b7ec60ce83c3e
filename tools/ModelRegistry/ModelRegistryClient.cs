using System.Net;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Flurl.Http;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
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

    /// <summary>Most pages one listing may take (× <see cref="PageSize"/> = 100,000 items): a page token that never ends fails.</summary>
    public const int DefaultMaxListPages = 1_000;

    /// <summary>Most bytes one listing may take, all pages together (memory stays bounded).</summary>
    public const long DefaultMaxListBytes = 64L << 20;

    /// <summary>Most bytes of one answer that is not a listing page (the documents here are small).</summary>
    public const long MaxBodyBytes = 4L << 20;

    /// <summary>Bound on the pages of one listing (<see cref="DefaultMaxListPages"/>).</summary>
    public int MaxListPages { get; init; } = DefaultMaxListPages;

    /// <summary>Bound on the bytes of one listing (<see cref="DefaultMaxListBytes"/>).</summary>
    public long MaxListBytes { get; init; } = DefaultMaxListBytes;

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
        RegisteredModel? found = null;
        await ListAsync(["registered_models"], [], ModelRegistryJson.Default.ListPageRegisteredModel, "registered models", items =>
        {
            found = items.FirstOrDefault(m => m.Name == name);
            return found is not null;
        }, ct);
        return found;
    }

    /// <summary>GET /registered_models/{id}: the model stored under that id (what a lookup by name is checked against).</summary>
    public async Task<RegisteredModel?> GetModelAsync(string id, CancellationToken ct)
    {
        var r = await GetAsync(["registered_models", id], [], ct);
        return r.Status == HttpStatusCode.NotFound ? null : Read(r, ModelRegistryJson.Default.RegisteredModel);
    }

    /// <summary>POST /registered_models. Null when the name already exists (409, or 500 with code "" from old servers).</summary>
    public Task<RegisteredModel?> CreateModelAsync(RegisteredModelCreate body, CancellationToken ct) =>
        CreateAsync(["registered_models"], body, ModelRegistryJson.Default.RegisteredModelCreate, ModelRegistryJson.Default.RegisteredModel, ct);

    // ---- model versions ----

    /// <summary>
    /// GET /model_version?name=&amp;parentResourceId=: the version with exactly this name, or null (404, or a LIKE
    /// look-alike). Its parent is as the server says: the caller checks it is the model asked for.
    /// </summary>
    public async Task<ModelVersion?> FindVersionAsync(string registeredModelId, string name, CancellationToken ct)
    {
        var r = await GetAsync(["model_version"], [("name", name), ("parentResourceId", registeredModelId)], ct);
        if (r.Status == HttpStatusCode.NotFound)
        {
            return null;
        }
        var version = Read(r, ModelRegistryJson.Default.ModelVersion);
        if (version.Name != name)
        {
            _logger.LogDebug("model version lookup for '{Name}' matched '{Other}' (id {Id}): SQL LIKE look-alike, ignored", name, version.Name, version.Id);
            return null;
        }
        return version;
    }

    /// <summary>Pages through GET /registered_models/{id}/versions?name= and keeps only the exact name (parent checked by the caller).</summary>
    public async Task<ModelVersion?> FindVersionByListingAsync(string registeredModelId, string name, CancellationToken ct)
    {
        ModelVersion? found = null;
        await ListAsync(["registered_models", registeredModelId, "versions"], [("name", name)], ModelRegistryJson.Default.ListPageModelVersion,
            $"versions of registered model {registeredModelId}", items =>
            {
                found = items.FirstOrDefault(v => v.Name == name);
                return found is not null;
            }, ct);
        return found;
    }

    /// <summary>POST /model_versions. Null when the name already exists under that model.</summary>
    public Task<ModelVersion?> CreateVersionAsync(ModelVersionCreate body, CancellationToken ct) =>
        CreateAsync(["model_versions"], body, ModelRegistryJson.Default.ModelVersionCreate, ModelRegistryJson.Default.ModelVersion, ct);

    // ---- model artifacts ----

    /// <summary>GET /model_versions/{id}/artifacts?artifactType=model-artifact, oldest first (the deploy flow reads the first).</summary>
    public async Task<List<ModelArtifact>> ListArtifactsAsync(string versionId, CancellationToken ct)
    {
        var all = new List<ModelArtifact>();
        await ListAsync(["model_versions", versionId, "artifacts"], [("artifactType", ModelArtifact.Type)], ModelRegistryJson.Default.ListPageModelArtifact,
            $"model artifacts of model version {versionId}", items =>
            {
                all.AddRange(items);
                return false;
            }, ct);
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

    /// <summary>
    /// Pages through a listing (oldest first) until <paramref name="page"/> returns true or the last page, bounded by
    /// <see cref="MaxListPages"/> and <see cref="MaxListBytes"/>: a page token that never ends fails with one line
    /// naming the page count, never a hang.
    /// </summary>
    private async Task ListAsync<T>(string[] path, IReadOnlyList<(string, string)> filter, JsonTypeInfo<ListPage<T>> info, string what,
        Func<List<T>, bool> page, CancellationToken ct)
    {
        int pages = 0;
        var budget = new ReadBudget(MaxListBytes, b => new ModelRegistryException(
            $"listing {what} is too large: over {SizeParser.Format(b.Limit)} in {pages} page(s) (at most {SizeParser.Format(b.Limit)})"));
        string? token = null;
        do
        {
            if (pages >= MaxListPages)
            {
                throw new ModelRegistryException($"listing {what} does not end: {pages} pages read and the server still gives a next page token (at most {MaxListPages} pages)");
            }
            pages++;
            var query = new List<(string, string)>(filter);
            query.AddRange(PageQuery(token));
            var r = (await SendAsync(HttpMethod.Get, path, query, null, ct, budget: budget))!;
            var answer = Read(r, info);
            var items = answer.Items ?? [];
            if (page(items))
            {
                return;
            }
            token = NextToken(answer.NextPageToken, token, items.Count);
        }
        while (token is not null);
    }

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
    private async Task<RegistryResponse?> SendAsync(HttpMethod method, string[] path, IReadOnlyList<(string Name, string Value)> query, string? body, CancellationToken ct, bool isCreate = false,
        ReadBudget? budget = null)
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
        string text = "";
        try
        {
            response = await _retry.ExecuteAsync(async token =>
            {
                using var content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json");
                IFlurlResponse flurlResponse;
                try
                {
                    flurlResponse = await request.SendAsync(method, content, HttpCompletionOption.ResponseHeadersRead, token);
                }
                catch (FlurlHttpException e) when (e.InnerException is not null)
                {
                    ExceptionDispatchInfo.Capture(e.InnerException).Throw(); // HttpRequestException/IOException: the retry policy knows these
                    throw;
                }
                var message = flurlResponse.ResponseMessage;
                try
                {
                    // read here, inside the retries (a cut body is retried), and bounded (a ModelCarException: never retried)
                    text = await ReadBodyAsync(message, method, url, budget, token);
                }
                catch
                {
                    message.Dispose();
                    throw;
                }
                if (isCreate && message.StatusCode == HttpStatusCode.InternalServerError)
                {
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
            var r = new RegistryResponse(method, url, response.StatusCode, response.ReasonPhrase, text, response.Content.Headers.ContentType?.MediaType);
            _logger.LogDebug("{Method} {Url}: {Status}", method.Method, Redactor.Url(url), (int)r.Status);
            return r;
        }
    }

    /// <summary>
    /// The body as text, bounded: by the listing's <paramref name="budget"/>, else by <see cref="MaxBodyBytes"/> (one
    /// line naming the URL and the bound, never the whole body held in memory).
    /// </summary>
    private static async Task<string> ReadBodyAsync(HttpResponseMessage response, HttpMethod method, Uri url, ReadBudget? budget, CancellationToken ct)
    {
        budget ??= new ReadBudget(MaxBodyBytes, b => new ModelRegistryException(
            $"{method.Method} {Redactor.Url(url)}: answer is larger than {SizeParser.Format(b.Limit)}"));
        await using var stream = budget.Wrap(await response.Content.ReadAsStreamAsync(ct));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync(ct);
    }

    private sealed class DuplicateAnswer(RegistryResponse response) : ModelRegistryException("duplicate")
    {
        public RegistryResponse Response { get; } = response;
    }

    public void Dispose() => _flurl.Dispose();
}
