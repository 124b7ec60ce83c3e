using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelCar.TestSupport;

public sealed record LoggedRequest(string Method, string Path, string Query, string Body, int Status, string? Authorization)
{
    public bool IsWrite => Method is "POST" or "PATCH";
    public override string ToString() => $"{Method} {Path}{Query} {Body} -> {Status}";
}

/// <summary>A canned answer a test injects (fault injection).</summary>
public sealed record FakeReply(int Status, string Body, string ContentType = "application/json")
{
    /// <summary>Seconds for a Retry-After header (429/503 answers), or none.</summary>
    public int? RetryAfter { get; init; }
}

/// <summary>
/// An in-process Kubeflow Model Registry (REST v1alpha3) on 127.0.0.1, as strict as the real
/// server: numeric string ids, unknown JSON fields → 400 "json: unknown field", missing required →
/// 422, duplicates → 409 (or 500 with code "" in <see cref="LegacyDuplicates"/> mode), finds that
/// match none or several → 404, names matched with SQL LIKE semantics (case-insensitive, `_`/`%`
/// wildcards), customProperties replaced on PATCH, read-only fields rejected on PATCH,
/// {code,message} errors, plain-text 401/403 like kube-rbac-proxy, optional 503 bursts and TLS.
/// Every request is logged for assertions.
/// </summary>
public sealed class FakeModelRegistry : IAsyncDisposable
{
    public const string Prefix = "/api/model_registry/v1alpha3";

    private readonly WebApplication _app;
    private readonly object _lock = new();
    private readonly List<LoggedRequest> _log = [];
    private readonly List<JsonObject> _models = [];
    private readonly List<JsonObject> _versions = [];
    private readonly List<JsonObject> _artifacts = [];
    private int _contextIds;   // models and versions share the MLMD context id space
    private int _artifactIds;
    private int _fail503;

    private FakeModelRegistry(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    /// <summary>When set, requests need "Authorization: Bearer &lt;Token&gt;" (401 text otherwise).</summary>
    public string? Token { get; set; }

    /// <summary>A token the proxy knows but that lacks RBAC: 403 text.</summary>
    public string? ForbiddenToken { get; set; }

    /// <summary>Servers before v0.2.15: duplicates answer 500 with code "".</summary>
    public bool LegacyDuplicates { get; set; }

    /// <summary>One-shot or permanent fault injection: return a reply to answer with it instead.</summary>
    public Func<LoggedRequest, FakeReply?>? Fault { get; set; }

    private Func<LoggedRequest, bool>? _gateMatch;
    private int _gateParties;
    private TaskCompletionSource? _gate;

    /// <summary>
    /// Makes a race certain: the first <paramref name="parties"/> requests matching <paramref name="match"/>
    /// are held until all of them have arrived (at most 20 s), so every racer sees the same state.
    /// </summary>
    public void Gate(Func<LoggedRequest, bool> match, int parties = 2)
    {
        _gateMatch = match;
        _gateParties = parties;
        _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public void Fail503(int times) => Interlocked.Exchange(ref _fail503, times);

    public static async Task<FakeModelRegistry> StartAsync(X509Certificate2? tls = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o =>
        {
            if (tls is not null)
            {
                o.UseHttps(tls);
            }
        }));
        var app = builder.Build();
        var fake = new FakeModelRegistry(app);
        app.Run(fake.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        fake.Url = new Uri(address.Replace("[::]", "127.0.0.1"));
        return fake;
    }

    public IReadOnlyList<LoggedRequest> Log
    {
        get { lock (_lock) { return _log.ToList(); } }
    }

    public IReadOnlyList<LoggedRequest> Writes => Log.Where(r => r.IsWrite).ToList();

    /// <summary>Successful creates (201) — what "a re-run creates nothing" is asserted on.</summary>
    public IReadOnlyList<LoggedRequest> Creates => Log.Where(r => r.Method == "POST" && r.Status == 201).ToList();

    public void ClearLog()
    {
        lock (_lock) { _log.Clear(); }
    }

    public List<JsonObject> Models { get { lock (_lock) { return _models.Select(Clone).ToList(); } } }
    public List<JsonObject> Versions { get { lock (_lock) { return _versions.Select(Clone).ToList(); } } }
    public List<JsonObject> Artifacts { get { lock (_lock) { return _artifacts.Select(Clone).ToList(); } } }

    // ---- seeding (what other clients created before) ----

    public string AddModel(string name)
    {
        lock (_lock)
        {
            var m = Stamp(new JsonObject { ["name"] = name, ["state"] = "LIVE" }, ++_contextIds);
            _models.Add(m);
            return (string)m["id"]!;
        }
    }

    public string AddVersion(string modelId, string name)
    {
        lock (_lock)
        {
            var v = Stamp(new JsonObject { ["name"] = name, ["registeredModelId"] = modelId, ["state"] = "LIVE" }, ++_contextIds);
            _versions.Add(v);
            return (string)v["id"]!;
        }
    }

    public string AddArtifact(string versionId, string name, string uri, JsonObject? customProperties = null)
    {
        lock (_lock)
        {
            var a = Stamp(new JsonObject { ["artifactType"] = "model-artifact", ["name"] = name, ["uri"] = uri, ["state"] = "UNKNOWN", ["customProperties"] = customProperties ?? new JsonObject() }, ++_artifactIds);
            a["_parent"] = versionId;
            _artifacts.Add(a);
            return (string)a["id"]!;
        }
    }

    // ---- HTTP ----

    private async Task HandleAsync(HttpContext ctx)
    {
        string body;
        using (var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8))
        {
            body = await reader.ReadToEndAsync();
        }
        var req = new LoggedRequest(ctx.Request.Method, ctx.Request.Path.Value ?? "", ctx.Request.QueryString.Value ?? "", body, 0,
            ctx.Request.Headers.Authorization.FirstOrDefault());
        FakeReply reply;
        if (Interlocked.Decrement(ref _fail503) >= 0)
        {
            reply = new FakeReply(503, "upstream connect error or disconnect/reset before headers", "text/plain");
        }
        else if (Token is not null && req.Authorization != "Bearer " + Token)
        {
            reply = ForbiddenToken is not null && req.Authorization == "Bearer " + ForbiddenToken
                ? new FakeReply(403, "Forbidden (user=system:serviceaccount:pipelines:pipeline-runner, verb=get, resource=services, subresource=)", "text/plain")
                : new FakeReply(401, "Unauthorized", "text/plain");
        }
        else if (Fault?.Invoke(req) is { } injected)
        {
            reply = injected;
        }
        else
        {
            if (_gate is { } gate && _gateMatch!(req))
            {
                if (Interlocked.Decrement(ref _gateParties) >= 0)
                {
                    if (Volatile.Read(ref _gateParties) <= 0)
                    {
                        gate.TrySetResult();
                    }
                    await gate.Task.WaitAsync(TimeSpan.FromSeconds(20));
                }
            }
            lock (_lock)
            {
                reply = Route(req, ctx.Request.Query);
            }
        }
        lock (_lock)
        {
            _log.Add(req with { Status = reply.Status });
        }
        ctx.Response.StatusCode = reply.Status;
        ctx.Response.ContentType = reply.ContentType;
        if (reply.RetryAfter is { } seconds)
        {
            ctx.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        await ctx.Response.WriteAsync(reply.Body);
    }

    private static FakeReply Error(int status, string message, string? code = null) =>
        new(status, new JsonObject { ["code"] = code ?? ReasonPhrase(status), ["message"] = message }.ToJsonString());

    private static string ReasonPhrase(int status) => status switch
    {
        400 => "Bad Request", 404 => "Not Found", 409 => "Conflict", 422 => "Bad Request", 500 => "Internal Server Error", _ => "Error",
    };

    private static FakeReply Ok(JsonObject o, int status = 200) => new(status, Public(o).ToJsonString());

    private FakeReply Route(LoggedRequest req, IQueryCollection query)
    {
        if (!req.Path.StartsWith(Prefix + "/", StringComparison.Ordinal))
        {
            return new FakeReply(404, "404 page not found", "text/plain");
        }
        var seg = req.Path[(Prefix.Length + 1)..].Split('/');
        string? Q(string name) => query.TryGetValue(name, out var v) ? v.ToString() : null;
        try
        {
            return (req.Method, seg) switch
            {
                ("GET", ["registered_model"]) => FindOne(_models, Q("name"), Q("externalId"), null, null, "registered models"),
                ("GET", ["registered_models"]) => ListOf(_models, query),
                ("POST", ["registered_models"]) => CreateModel(Parse(req.Body, ModelCreateFields)),
                ("GET", ["registered_models", var id]) => Get(_models, id, "registered model"),
                ("PATCH", ["registered_models", var id]) => Patch(_models, id, Parse(req.Body, ModelUpdateFields), "registered model"),
                ("GET", ["registered_models", var id, "versions"]) => Get(_models, id, "registered model").Status != 200
                    ? Get(_models, id, "registered model")
                    : ListOf(_versions.Where(v => (string?)v["registeredModelId"] == id).Where(v => Q("name") is not { } n || Like((string)v["name"]!, n)), query),
                ("POST", ["registered_models", var id, "versions"]) => CreateVersion(Parse(req.Body, VersionCreateFields)),
                ("GET", ["model_version"]) => Q("name") is not null && Q("parentResourceId") is null
                    ? Error(400, "cannot search by name without parentResourceId")
                    : FindOne(_versions, Q("name"), Q("externalId"), Q("parentResourceId"), "registeredModelId", "versions"),
                ("GET", ["model_versions"]) => ListOf(_versions, query),
                ("POST", ["model_versions"]) => CreateVersion(Parse(req.Body, VersionCreateFields)),
                ("GET", ["model_versions", var id]) => Get(_versions, id, "model version"),
                ("PATCH", ["model_versions", var id]) => Patch(_versions, id, Parse(req.Body, VersionUpdateFields), "model version"),
                ("GET", ["model_versions", var id, "artifacts"]) => Get(_versions, id, "model version").Status != 200
                    ? Get(_versions, id, "model version")
                    : ListOf(_artifacts.Where(a => (string?)a["_parent"] == id)
                        .Where(a => Q("artifactType") is not { } t || (string?)a["artifactType"] == t)
                        .Where(a => Q("name") is not { } n || Like((string)a["name"]!, n)), query),
                ("POST", ["model_versions", var id, "artifacts"]) => UpsertArtifact(id, Parse(req.Body, ArtifactUpsertFields)),
                ("GET", ["model_artifact"]) => FindOne(_artifacts, Q("name"), Q("externalId"), Q("parentResourceId"), "_parent", "model artifacts"),
                ("GET", ["model_artifacts", var id]) => Get(_artifacts, id, "model artifact"),
                ("PATCH", ["model_artifacts", var id]) => Patch(_artifacts, id, Parse(req.Body, ArtifactUpdateFields), "model artifact"),
                _ => new FakeReply(405, "method not allowed", "text/plain"),
            };
        }
        catch (BadBody e)
        {
            return Error(400, e.Message);
        }
    }

    // ---- strict decoding (Go's DisallowUnknownFields) ----

    private sealed class BadBody(string message) : Exception(message);

    private static readonly string[] ResourceUpdate = ["description", "externalId", "customProperties"];
    private static readonly HashSet<string> ModelUpdateFields = [.. ResourceUpdate, "owner", "state"];
    private static readonly HashSet<string> ModelCreateFields = [.. ModelUpdateFields, "name"];
    private static readonly HashSet<string> VersionUpdateFields = [.. ResourceUpdate, "author", "state"];
    private static readonly HashSet<string> VersionCreateFields = [.. VersionUpdateFields, "name", "registeredModelId"];
    private static readonly HashSet<string> ArtifactUpdateFields = [.. ResourceUpdate, "artifactType", "uri", "state", "modelFormatName", "modelFormatVersion",
        "storageKey", "storagePath", "serviceAccountName", "modelSourceKind", "modelSourceClass", "modelSourceGroup", "modelSourceId", "modelSourceName"];
    private static readonly HashSet<string> ArtifactUpsertFields = [.. ArtifactUpdateFields, "name", "id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"];

    private static JsonObject Parse(string body, HashSet<string> allowed)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(body);
        }
        catch (JsonException e)
        {
            throw new BadBody("invalid character: " + e.Message);
        }
        if (node is not JsonObject o)
        {
            throw new BadBody("json: cannot unmarshal non-object into Go value");
        }
        foreach (var (key, value) in o)
        {
            if (!allowed.Contains(key))
            {
                throw new BadBody($"json: unknown field \"{key}\"");
            }
            if (value is null)
            {
                continue; // Go decodes null into a pointer field as "unset"; our client must not send it anyway (asserted separately)
            }
            if (key == "customProperties")
            {
                CheckProperties(value);
            }
            else if (value.GetValueKind() != JsonValueKind.String)
            {
                throw new BadBody($"json: cannot unmarshal {value.GetValueKind().ToString().ToLowerInvariant()} into Go struct field .{key} of type string");
            }
        }
        return o;
    }

    private static readonly Regex IntValue = new("^-?([1-9][0-9]{0,8}|0)$");

    private static void CheckProperties(JsonNode value)
    {
        if (value is not JsonObject props)
        {
            throw new BadBody("json: cannot unmarshal into Go struct field .customProperties of type map[string]openapi.MetadataValue");
        }
        foreach (var (name, v) in props)
        {
            if (v is not JsonObject mv || mv["metadataType"]?.GetValueKind() != JsonValueKind.String)
            {
                throw new BadBody($"customProperties[{name}]: metadataType is required");
            }
            var type = (string)mv["metadataType"]!;
            var (field, kind) = type switch
            {
                "MetadataStringValue" => ("string_value", JsonValueKind.String),
                "MetadataIntValue" => ("int_value", JsonValueKind.String),
                "MetadataDoubleValue" => ("double_value", JsonValueKind.Number),
                "MetadataBoolValue" => ("bool_value", JsonValueKind.True),
                "MetadataStructValue" => ("struct_value", JsonValueKind.String),
                _ => throw new BadBody($"customProperties[{name}]: unknown metadataType \"{type}\""),
            };
            foreach (var (k, _) in mv)
            {
                if (k != "metadataType" && k != field)
                {
                    throw new BadBody($"json: unknown field \"{k}\"");
                }
            }
            var actual = mv[field]?.GetValueKind();
            bool ok = kind == JsonValueKind.True ? actual is JsonValueKind.True or JsonValueKind.False : actual == kind;
            if (!ok)
            {
                throw new BadBody($"customProperties[{name}]: {field} must be a {(kind == JsonValueKind.True ? "boolean" : kind.ToString().ToLowerInvariant())}");
            }
            if (type == "MetadataIntValue" && !IntValue.IsMatch((string)mv[field]!))
            {
                throw new BadBody($"customProperties[{name}]: int_value must match {IntValue}");
            }
        }
    }

    // ---- operations ----

    private static bool Like(string value, string pattern)
    {
        var regex = "^" + string.Concat(pattern.Select(c => c switch { '%' => ".*", '_' => ".", _ => Regex.Escape(c.ToString()) })) + "$";
        return Regex.IsMatch(value, regex, RegexOptions.IgnoreCase | RegexOptions.Singleline);
    }

    private FakeReply FindOne(List<JsonObject> items, string? name, string? externalId, string? parent, string? parentField, string what)
    {
        if (name is null && externalId is null)
        {
            return Error(400, "invalid parameters used to retrieve entity: must provide either name or externalId");
        }
        var matches = items.Where(i => (name is null || Like((string)i["name"]!, name))
            && (externalId is null || (string?)i["externalId"] == externalId)
            && (parent is null || parentField is null || (string?)i[parentField] == parent)).ToList();
        return matches.Count == 1
            ? Ok(matches[0])
            : Error(404, matches.Count == 0 ? $"no {what} found for name={name}" : $"multiple {what} found for name={name}");
    }

    private FakeReply Get(List<JsonObject> items, string id, string what)
    {
        if (!Regex.IsMatch(id, "^[1-9][0-9]{0,8}$"))
        {
            return Error(400, $"invalid id: strconv.ParseInt: parsing \"{id}\": invalid syntax");
        }
        return items.FirstOrDefault(i => (string?)i["id"] == id) is { } found ? Ok(found) : Error(404, $"{what} by id {id} not found");
    }

    private static FakeReply ListOf(IEnumerable<JsonObject> items, IQueryCollection query)
    {
        var all = items.OrderBy(i => int.Parse((string)i["id"]!)).ToList();
        int offset = query.TryGetValue("nextPageToken", out var t) && int.TryParse(t, out var o) ? o : 0;
        int size = query.TryGetValue("pageSize", out var ps) && int.TryParse(ps, out var p) && p > 0 ? p : all.Count;
        var page = all.Skip(offset).Take(size).ToList();
        string next = offset + page.Count < all.Count ? (offset + page.Count).ToString() : "";
        var result = new JsonObject
        {
            ["items"] = new JsonArray(page.Select(i => (JsonNode)Public(i)).ToArray()),
            ["nextPageToken"] = next,
            ["pageSize"] = size,
            ["size"] = page.Count,
        };
        return new FakeReply(200, result.ToJsonString());
    }

    private FakeReply Duplicate(string message) => LegacyDuplicates ? Error(500, message, code: "") : Error(409, message);

    private FakeReply CreateModel(JsonObject body)
    {
        if (body["name"] is not { } n || ((string)n!).Length == 0)
        {
            return Error(422, "required field 'name' is zero value.");
        }
        if (_models.Any(m => (string)m["name"]! == (string)n!))
        {
            return Duplicate($"duplicate key value violates unique constraint: registered model name \"{n}\"");
        }
        var m = Stamp(Copy(body), ++_contextIds);
        m["state"] ??= "LIVE";
        _models.Add(m);
        return Ok(m, 201);
    }

    private FakeReply CreateVersion(JsonObject body)
    {
        if (body["name"] is null || ((string)body["name"]!).Length == 0 || body["registeredModelId"] is null)
        {
            return Error(422, "required field 'name' or 'registeredModelId' is zero value.");
        }
        string name = (string)body["name"]!, parent = (string)body["registeredModelId"]!;
        if (_versions.Any(v => (string)v["name"]! == name && (string?)v["registeredModelId"] == parent))
        {
            return Duplicate($"duplicate key value violates unique constraint: model version name \"{name}\"");
        }
        var v = Stamp(Copy(body), ++_contextIds);
        v["state"] ??= "LIVE";
        _versions.Add(v);
        return Ok(v, 201);
    }

    private FakeReply UpsertArtifact(string versionId, JsonObject body)
    {
        if (Get(_versions, versionId, "model version") is { Status: not 200 } missing)
        {
            return missing;
        }
        if (body["artifactType"] is null)
        {
            return Error(400, "artifactType is required: unsupported artifactType");
        }
        if ((string)body["artifactType"]! != "model-artifact")
        {
            return Error(400, $"unsupported artifactType {body["artifactType"]}");
        }
        if (body["id"] is { } id)
        {
            var existing = _artifacts.FirstOrDefault(a => (string?)a["id"] == (string)id!);
            return existing is null ? Error(404, $"artifact by id {id} not found") : Patch(_artifacts, (string)id!, body, "model artifact");
        }
        var name = (string?)body["name"] ?? Guid.NewGuid().ToString();
        if (_artifacts.Any(a => (string?)a["_parent"] == versionId && (string?)a["name"] == name))
        {
            return Duplicate($"duplicate key value violates unique constraint: artifact name \"{name}\"");
        }
        var a = Stamp(Copy(body), ++_artifactIds);
        a["name"] = name;
        a["state"] ??= "UNKNOWN";
        a["customProperties"] ??= new JsonObject();
        a["_parent"] = versionId;
        _artifacts.Add(a);
        return Ok(a, 201);
    }

    private FakeReply Patch(List<JsonObject> items, string id, JsonObject body, string what)
    {
        if (Get(items, id, what) is { Status: not 200 } bad)
        {
            return bad;
        }
        var target = items.First(i => (string?)i["id"] == id);
        foreach (var (key, value) in body)
        {
            if (key is "id" or "name" or "createTimeSinceEpoch" or "lastUpdateTimeSinceEpoch")
            {
                continue; // only reachable through the upsert body
            }
            target[key] = value?.DeepClone(); // customProperties: the whole map is replaced
        }
        target["lastUpdateTimeSinceEpoch"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString();
        return Ok(target);
    }

    private static JsonObject Stamp(JsonObject o, int id)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString();
        o["id"] = id.ToString();
        o["createTimeSinceEpoch"] = now;
        o["lastUpdateTimeSinceEpoch"] = now;
        o["customProperties"] ??= new JsonObject();
        return o;
    }

    private static JsonObject Copy(JsonObject o) => (JsonObject)o.DeepClone();

    private static JsonObject Clone(JsonObject o) => Copy(o);

    /// <summary>What the API shows: no internal fields.</summary>
    private static JsonObject Public(JsonObject o)
    {
        var copy = Copy(o);
        copy.Remove("_parent");
        return copy;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
