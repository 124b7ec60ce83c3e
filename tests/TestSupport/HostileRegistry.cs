using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelCar.TestSupport;

/// <summary>One request a <see cref="HostileRegistry"/> saw.</summary>
public sealed record HostileRequest(int Port, string Method, string Target, string? Authorization);

/// <summary>
/// A small in-memory distribution registry on 127.0.0.1 that can lie (issue 21): it stores blobs and
/// manifests like a registry, requires Basic auth when <see cref="RequireBasic"/> is set, and
/// <list type="bullet">
/// <item>with <see cref="ForeignUploads"/> answers every upload <c>Location</c> (POST, PATCH) on a second
/// listener (another port: another origin) that serves the upload session without asking for credentials
/// and records every Authorization header it is sent;</item>
/// <item>with <see cref="DropManifests"/> answers a manifest PUT 201 (with the right digest) without storing it;</item>
/// <item>with <see cref="ServeBlob"/> serves a blob with other bytes;</item>
/// <item>with <see cref="SharedRepositories"/> serves every repository's manifests from every repository (a replay across repositories);</item>
/// <item>answers the referrers API through <see cref="ReferrersApi"/> (none: 404) and, with <see cref="SendOciSubject"/>,
/// a manifest PUT with a subject with OCI-Subject.</item>
/// </list>
/// <see cref="StartAsync"/> serves it on 127.0.0.1 (Kestrel, for the published binaries); <c>new HostileRegistry()</c> is the same
/// registry in process, for a <see cref="FakeHttpHandler"/> (<see cref="Respond"/>): its own origin is any host but
/// <see cref="ForeignHost"/>, which is the foreign origin.
/// </summary>
public sealed class HostileRegistry : IAsyncDisposable
{
    private readonly WebApplication? _app;
    private readonly ConcurrentDictionary<string, byte[]> _blobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, MemoryStream> _uploads = new(StringComparer.Ordinal);

    /// <summary>The registry in process (no listener): requests come through <see cref="Respond"/>.</summary>
    public HostileRegistry()
    {
        Port = 0;
        ForeignPort = -1;
    }

    /// <summary>In process: the host of the foreign origin (what foreign upload Locations name).</summary>
    public const string ForeignHost = "foreign.example";

    private HostileRegistry(WebApplication app, int port, int foreignPort)
    {
        _app = app;
        Port = port;
        ForeignPort = foreignPort;
    }

    public int Port { get; }

    /// <summary>The second listener: the "other origin" of foreign upload Locations.</summary>
    public int ForeignPort { get; }

    public string HostPort => $"127.0.0.1:{Port}";

    /// <summary>user:password: requests to the registry's own origin without it get 401 Basic.</summary>
    public string? RequireBasic { get; set; }

    public bool ForeignUploads { get; set; }

    public bool DropManifests { get; set; }

    public ConcurrentQueue<HostileRequest> Requests { get; } = new();

    /// <summary>Stored blobs by digest.</summary>
    public ConcurrentDictionary<string, byte[]> Blobs => _blobs;

    /// <summary>Stored manifests by REPOSITORY@REFERENCE (tag or digest).</summary>
    public ConcurrentDictionary<string, (string MediaType, byte[] Content)> Manifests { get; } = new(StringComparer.Ordinal);

    /// <summary>The bytes a blob GET answers (digest, stored bytes): the stored bytes unless a test lies.</summary>
    public Func<string, byte[], byte[]> ServeBlob { get; set; } = (_, b) => b;

    /// <summary>Every repository serves the manifests of every other (a replay across repositories).</summary>
    public bool SharedRepositories { get; set; }

    /// <summary>GET /v2/NAME/referrers/DIGEST: null = no referrers API (404), else the answer (given the subject and the request).</summary>
    public Func<string, HttpRequest, HttpResponseMessage>? ReferrersApi { get; set; }

    /// <summary>Answer a manifest PUT that has a subject with OCI-Subject (a registry with the referrers API).</summary>
    public bool SendOciSubject { get; set; }

    /// <summary>Requests the foreign origin saw.</summary>
    public IEnumerable<HostileRequest> ForeignRequests => Requests.Where(r => r.Port == ForeignPort);

    public bool HasManifest(string repository, string reference) => FindManifest(repository, reference) is not null;

    private (string MediaType, byte[] Content)? FindManifest(string repository, string reference)
    {
        if (Manifests.TryGetValue(repository + "@" + reference, out var m))
        {
            return m;
        }
        return SharedRepositories && Manifests.FirstOrDefault(e => e.Key.EndsWith("@" + reference, StringComparison.Ordinal)) is { Key: not null } any ? any.Value : null;
    }

    /// <summary>Stores a small image (a config and a manifest without layers) made unique by <paramref name="marker"/>; its digest.</summary>
    public string PutImage(string repository, byte[] marker)
    {
        var config = Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},\"m\":\"" + Convert.ToHexString(marker) + "\"}");
        _blobs[Sha(config)] = config;
        var manifest = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\""
            + Sha(config) + "\",\"size\":" + config.Length + "},\"layers\":[]}");
        var digest = Sha(manifest);
        Manifests[repository + "@" + digest] = ("application/vnd.oci.image.manifest.v1+json", manifest);
        return digest;
    }

    /// <summary>What a registry with the referrers API would list for <paramref name="subject"/>: every stored manifest whose subject it is.</summary>
    public byte[] ReferrersOf(string subject)
    {
        var entries = Manifests.Where(m => m.Key.Contains("@sha256:", StringComparison.Ordinal)).Select(m => m.Value).DistinctBy(m => Sha(m.Content))
            .Select(m => (m.MediaType, m.Content, Doc: JsonDocument.Parse(m.Content)))
            .Where(m => m.Doc.RootElement.TryGetProperty("subject", out var s) && s.GetProperty("digest").GetString() == subject)
            .Select(m => new JsonObject
            {
                ["mediaType"] = m.MediaType,
                ["digest"] = Sha(m.Content),
                ["size"] = m.Content.Length,
                ["artifactType"] = m.Doc.RootElement.TryGetProperty("artifactType", out var at) ? at.GetString() : null,
                ["annotations"] = m.Doc.RootElement.TryGetProperty("annotations", out var a) ? JsonNode.Parse(a.GetRawText()) : null,
            });
        var index = new JsonObject { ["schemaVersion"] = 2, ["mediaType"] = "application/vnd.oci.image.index.v1+json", ["manifests"] = new JsonArray([.. entries]) };
        return Encoding.UTF8.GetBytes(index.ToJsonString());
    }

    /// <summary>In process: one request through the same handler as the listener (for a <see cref="FakeHttpHandler"/>).</summary>
    public async Task<HttpResponseMessage> Respond(HttpRequestMessage req, byte[]? body)
    {
        var ctx = new DefaultHttpContext();
        var uri = req.RequestUri!;
        ctx.Connection.LocalPort = uri.Host == ForeignHost ? ForeignPort : Port;
        ctx.Request.Method = req.Method.Method;
        ctx.Request.Scheme = uri.Scheme;
        ctx.Request.Host = new HostString(uri.Authority);
        ctx.Request.Path = uri.AbsolutePath;
        ctx.Request.QueryString = new QueryString(uri.Query);
        foreach (var h in req.Headers.Concat(req.Content?.Headers ?? Enumerable.Empty<KeyValuePair<string, IEnumerable<string>>>()))
        {
            ctx.Request.Headers[h.Key] = h.Value.ToArray();
        }
        ctx.Request.Body = new MemoryStream(body ?? []);
        var responseBody = new MemoryStream();
        ctx.Response.Body = responseBody;
        await HandleAsync(ctx);
        var resp = new HttpResponseMessage((HttpStatusCode)ctx.Response.StatusCode) { Content = new ByteArrayContent(responseBody.ToArray()) };
        foreach (var h in ctx.Response.Headers)
        {
            if (!resp.Headers.TryAddWithoutValidation(h.Key, h.Value.ToArray()))
            {
                resp.Content.Headers.TryAddWithoutValidation(h.Key, h.Value.ToArray());
            }
        }
        if (ctx.Response.ContentLength is { } length)
        {
            resp.Content.Headers.ContentLength = length; // a HEAD says the size
        }
        return resp;
    }

    public static async Task<HostileRegistry> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o =>
        {
            o.Listen(IPAddress.Loopback, 0);
            o.Listen(IPAddress.Loopback, 0);
            o.Limits.MaxRequestBodySize = null;
        });
        var app = builder.Build();
        HostileRegistry? self = null;
        app.Run(ctx => self!.HandleAsync(ctx));
        await app.StartAsync();
        var ports = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)).Port).ToArray();
        self = new HostileRegistry(app, ports[0], ports[1]);
        return self;
    }

    private static string Sha(byte[] data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    private async Task HandleAsync(HttpContext ctx)
    {
        var request = ctx.Request;
        int port = ctx.Connection.LocalPort;
        string target = request.Path.Value + request.QueryString.Value;
        string? authorization = request.Headers.Authorization.Count > 0 ? request.Headers.Authorization.ToString() : null;
        Requests.Enqueue(new HostileRequest(port, request.Method, target, authorization));
        var path = request.Path.Value ?? "/";
        var referrers = path.IndexOf("/referrers/", StringComparison.Ordinal);

        if (path.StartsWith("/upload/", StringComparison.Ordinal))
        {
            await UploadAsync(ctx, path["/upload/".Length..]);
            return;
        }
        if (port != Port)
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        if (RequireBasic is { } creds && authorization != "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(creds)))
        {
            ctx.Response.Headers.WWWAuthenticate = "Basic realm=\"hostile\"";
            ctx.Response.StatusCode = 401;
            return;
        }
        if (referrers > 0 && path.StartsWith("/v2/", StringComparison.Ordinal))
        {
            if (ReferrersApi is not { } api)
            {
                ctx.Response.StatusCode = 404;
                return;
            }
            using var answer = api(path[(referrers + "/referrers/".Length)..], request);
            ctx.Response.StatusCode = (int)answer.StatusCode;
            foreach (var h in answer.Headers.Concat(answer.Content.Headers))
            {
                ctx.Response.Headers[h.Key] = h.Value.ToArray();
            }
            await answer.Content.CopyToAsync(ctx.Response.Body);
            return;
        }
        if (path == "/v2/" || path == "/v2")
        {
            ctx.Response.StatusCode = 200;
            return;
        }
        int blobs = path.IndexOf("/blobs/", StringComparison.Ordinal);
        int manifests = path.IndexOf("/manifests/", StringComparison.Ordinal);
        if (path.StartsWith("/v2/", StringComparison.Ordinal) && path.EndsWith("/blobs/uploads/", StringComparison.Ordinal) && request.Method == "POST")
        {
            var id = Guid.NewGuid().ToString("N");
            _uploads[id] = new MemoryStream();
            ctx.Response.Headers.Location = UploadUrl(id);
            ctx.Response.Headers.Range = "0-0";
            ctx.Response.StatusCode = 202;
            return;
        }
        if (blobs > 0)
        {
            var digest = path[(blobs + "/blobs/".Length)..];
            if (_blobs.TryGetValue(digest, out var stored))
            {
                var blob = ServeBlob(digest, stored);
                ctx.Response.Headers["Docker-Content-Digest"] = digest;
                ctx.Response.ContentLength = blob.Length;
                ctx.Response.StatusCode = 200;
                if (request.Method == "GET")
                {
                    await ctx.Response.Body.WriteAsync(blob);
                }
                return;
            }
            ctx.Response.StatusCode = 404;
            return;
        }
        if (manifests > 0)
        {
            var repository = path[4..manifests];
            var reference = path[(manifests + "/manifests/".Length)..];
            if (request.Method == "PUT")
            {
                using var body = new MemoryStream();
                await request.Body.CopyToAsync(body);
                var content = body.ToArray();
                var digest = Sha(content);
                if (!DropManifests)
                {
                    var mediaType = request.ContentType ?? "application/vnd.oci.image.manifest.v1+json";
                    Manifests[repository + "@" + reference] = (mediaType, content);
                    Manifests[repository + "@" + digest] = (mediaType, content);
                }
                ctx.Response.Headers["Docker-Content-Digest"] = digest;
                if (SendOciSubject && JsonDocument.Parse(content).RootElement.TryGetProperty("subject", out var subject))
                {
                    ctx.Response.Headers["OCI-Subject"] = subject.GetProperty("digest").GetString();
                }
                ctx.Response.Headers.Location = $"/v2/{repository}/manifests/{digest}";
                ctx.Response.StatusCode = 201;
                return;
            }
            if (FindManifest(repository, reference) is { } m)
            {
                ctx.Response.Headers["Docker-Content-Digest"] = Sha(m.Content);
                ctx.Response.ContentType = m.MediaType;
                ctx.Response.ContentLength = m.Content.Length;
                ctx.Response.StatusCode = 200;
                if (request.Method == "GET")
                {
                    await ctx.Response.Body.WriteAsync(m.Content);
                }
                return;
            }
            ctx.Response.StatusCode = 404;
            await ctx.Response.WriteAsync("{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}");
            return;
        }
        ctx.Response.StatusCode = 404;
    }

    private string UploadUrl(string id) => !ForeignUploads ? $"/upload/{id}" : _app is null ? $"https://{ForeignHost}/upload/{id}" : $"http://127.0.0.1:{ForeignPort}/upload/{id}";

    private async Task UploadAsync(HttpContext ctx, string id)
    {
        if (!_uploads.TryGetValue(id, out var data))
        {
            ctx.Response.StatusCode = 404;
            await ctx.Response.WriteAsync("{\"errors\":[{\"code\":\"BLOB_UPLOAD_UNKNOWN\",\"message\":\"unknown\"}]}");
            return;
        }
        var request = ctx.Request;
        switch (request.Method)
        {
            case "GET":
                ctx.Response.Headers.Location = UploadUrl(id);
                ctx.Response.Headers.Range = data.Length == 0 ? "0-0" : $"0-{data.Length - 1}";
                ctx.Response.StatusCode = 204;
                return;
            case "DELETE":
                _uploads.TryRemove(id, out _);
                ctx.Response.StatusCode = 204;
                return;
            case "PATCH":
                await request.Body.CopyToAsync(data);
                ctx.Response.Headers.Location = UploadUrl(id);
                ctx.Response.Headers.Range = $"0-{data.Length - 1}";
                ctx.Response.StatusCode = 202;
                return;
            case "PUT":
                await request.Body.CopyToAsync(data);
                var content = data.ToArray();
                var digest = Sha(content);
                if (request.Query["digest"].ToString() != digest)
                {
                    ctx.Response.StatusCode = 400;
                    await ctx.Response.WriteAsync("{\"errors\":[{\"code\":\"DIGEST_INVALID\",\"message\":\"digest invalid\"}]}");
                    return;
                }
                _uploads.TryRemove(id, out _);
                _blobs[digest] = content;
                ctx.Response.Headers["Docker-Content-Digest"] = digest;
                ctx.Response.StatusCode = 201;
                return;
            default:
                ctx.Response.StatusCode = 405;
                return;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
