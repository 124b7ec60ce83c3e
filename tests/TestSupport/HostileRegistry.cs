using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
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
/// <item>with <see cref="DropManifests"/> answers a manifest PUT 201 (with the right digest) without storing it.</item>
/// </list>
/// </summary>
public sealed class HostileRegistry : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, byte[]> _blobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (byte[] Content, string MediaType)> _manifests = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, MemoryStream> _uploads = new(StringComparer.Ordinal);

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

    /// <summary>Requests the foreign origin saw.</summary>
    public IEnumerable<HostileRequest> ForeignRequests => Requests.Where(r => r.Port == ForeignPort);

    public bool HasManifest(string repository, string reference) => _manifests.ContainsKey(repository + "@" + reference);

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
            if (_blobs.TryGetValue(digest, out var blob))
            {
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
                    _manifests[repository + "@" + reference] = (content, mediaType);
                    _manifests[repository + "@" + digest] = (content, mediaType);
                }
                ctx.Response.Headers["Docker-Content-Digest"] = digest;
                ctx.Response.Headers.Location = $"/v2/{repository}/manifests/{digest}";
                ctx.Response.StatusCode = 201;
                return;
            }
            if (_manifests.TryGetValue(repository + "@" + reference, out var m))
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

    private string UploadUrl(string id) => ForeignUploads ? $"http://127.0.0.1:{ForeignPort}/upload/{id}" : $"/upload/{id}";

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
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
