using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelCar.TestSupport;

public sealed class FakeFile(string path, byte[] content, bool lfs)
{
    public string Path { get; } = path;
    public byte[] Content { get; set; } = content;
    public bool Lfs { get; } = lfs;

    /// <summary>The LFS size the tree listing claims (default: the real size), e.g. one no disk can hold.</summary>
    public long? ClaimedSize { get; set; }
    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Content));
    public string GitOid => FakeHub.GitOid(Lfs ? Encoding.ASCII.GetBytes(Pointer) : Content);
    public string Pointer => $"version https://git-lfs.github.com/spec/v1\noid sha256:{Sha256}\nsize {Content.Length}\n";
}

public sealed class FakeRepo(string id, string commit)
{
    public string Id { get; } = id;
    public string Type { get; init; } = "models";
    public string Commit { get; } = commit;
    public Dictionary<string, string> Refs { get; } = new() { ["main"] = commit };
    public List<FakeFile> Files { get; } = [];

    /// <summary>Extra tree entries (e.g. hostile paths) listed but not served.</summary>
    public List<string> ExtraTreePaths { get; } = [];

    /// <summary>Tree entries listed whose /resolve/ answers 404 EntryNotFound.</summary>
    public HashSet<string> Missing { get; } = [];
    public bool Gated { get; init; }
    public bool Disabled { get; init; }

    public FakeFile Add(string path, byte[] content, bool lfs = false)
    {
        var f = new FakeFile(path, content, lfs);
        Files.Add(f);
        return f;
    }
}

/// <param name="Connection">Kestrel's id of the TCP connection the request came on (one per connection).</param>
public sealed record SeenRequest(int Port, string Method, string RawTarget, string? Authorization, string? Range, string Connection);

/// <summary>
/// A fake Hugging Face Hub on 127.0.0.1 behaving like the real one: /api/{type}s/{repo}/revision/{rev},
/// /tree/{rev}?recursive=true with Link pagination, /resolve/ with a 307 relative redirect for small files and a
/// 302 to a second origin (the "CDN", another port) for LFS files which rejects any Authorization header,
/// X-Repo-Commit / X-Linked-Etag / X-Linked-Size, quoted and W/ etags, Range/206/416, X-Error-Code errors,
/// plus fault injection (429, cut connections, ignored Range, wrong bytes, throttling).
/// </summary>
public sealed class FakeHub : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, int> _requestCounts = new();

    /// <param name="tls">Serve https on both origins with this certificate (e.g. signed by a test CA).</param>
    public FakeHub(System.Security.Cryptography.X509Certificates.X509Certificate2? tls = null)
    {
        Scheme = tls is null ? "http" : "https";
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o =>
        {
            o.Listen(IPAddress.Loopback, 0, l => { if (tls is not null) { l.UseHttps(tls); } });
            o.Listen(IPAddress.Loopback, 0, l => { if (tls is not null) { l.UseHttps(tls); } });
            o.Limits.MaxResponseBufferSize = 1 << 20;
        });
        _app = builder.Build();
        _app.Run(HandleAsync);
        _app.StartAsync().GetAwaiter().GetResult();
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a).Port).OrderBy(p => p).ToArray();
        HubPort = addresses[0];
        CdnPort = addresses[1];
    }

    public int HubPort { get; }
    public int CdnPort { get; }
    public string Scheme { get; }
    public string Endpoint => $"{Scheme}://127.0.0.1:{HubPort}";
    public List<FakeRepo> Repos { get; } = [];
    public HashSet<string> ValidTokens { get; } = [];
    public ConcurrentQueue<SeenRequest> Requests { get; } = new();
    public ConcurrentQueue<string> Violations { get; } = new();
    public int TreePageSize { get; set; } = 1000;

    /// <summary>Hostile: every tree page links to a next one (a new cursor each time), for ever.</summary>
    public bool EndlessTree { get; set; }

    /// <summary>Tree pages served (any repo).</summary>
    public int TreePagesServed => _treePages;

    private int _treePages;

    /// <summary>Body bytes sent per repo path (both origins).</summary>
    public ConcurrentDictionary<string, long> BytesServed { get; } = new();

    public bool IgnoreRange { get; set; }

    /// <summary>(path, nth body request of it, 1-based) → cut the connection after this many body bytes.</summary>
    public Func<string, int, long?> CutAfter { get; set; } = (_, _) => null;

    /// <summary>Paths whose bytes are served wrong (same size).</summary>
    public HashSet<string> Corrupt { get; } = [];

    /// <summary>Paths whose first body request only is served wrong (same size): a one-off corruption.</summary>
    public HashSet<string> CorruptOnce { get; } = [];

    /// <summary>Paths whose first ranged request gets 416.</summary>
    public HashSet<string> Force416Once { get; } = [];

    /// <summary>Per-connection body throttle in bytes per second (0 = none).</summary>
    public long ThrottleBytesPerSecond { get; set; }

    public long Served(string path) => BytesServed.TryGetValue(path, out var n) ? n : 0;

    public FakeRepo AddRepo(string id, string? commit = null, bool gated = false, bool disabled = false, string type = "models")
    {
        var repo = new FakeRepo(id, commit ?? Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(id + Repos.Count)))) { Gated = gated, Disabled = disabled, Type = type };
        Repos.Add(repo);
        return repo;
    }

    public static string GitOid(byte[] content)
    {
        var header = Encoding.ASCII.GetBytes($"blob {content.Length}\0");
        return Convert.ToHexStringLower(SHA1.HashData([.. header, .. content]));
    }

    /// <summary>
    /// The requests for <paramref name="file"/> from its <paramref name="nth"/> /resolve/ on the Hub origin on (that
    /// one, then the CDN's for an LFS file) that came over a connection some earlier request had used: empty when
    /// the refetch opened new connections instead of taking pooled ones.
    /// </summary>
    public List<SeenRequest> OnOldConnectionsFrom(FakeFile file, int nth)
    {
        var all = Requests.ToArray();
        int at = -1;
        for (int i = 0, seen = 0; i < all.Length && at < 0; i++)
        {
            if (all[i].Port == HubPort && all[i].RawTarget.Contains("/resolve/", StringComparison.Ordinal) && all[i].RawTarget.EndsWith("/" + file.Path, StringComparison.Ordinal) && ++seen == nth)
            {
                at = i;
            }
        }
        if (at < 0)
        {
            throw new InvalidOperationException($"{file.Path} was not resolved {nth} times");
        }
        var before = all[..at].Select(r => r.Connection).ToHashSet();
        return all[at..].Where((r, i) => i == 0 || (file.Lfs && r.Port == CdnPort && r.RawTarget.Contains(file.Sha256, StringComparison.Ordinal)))
            .Where(r => before.Contains(r.Connection)).ToList();
    }

    public IEnumerable<SeenRequest> Resolves => Requests.Where(r => r.RawTarget.Contains("/resolve/", StringComparison.Ordinal) || r.RawTarget.Contains("/resolve-cache/", StringComparison.Ordinal) || r.Port == CdnPort);

    private async Task HandleAsync(HttpContext ctx)
    {
        var raw = ctx.Features.Get<IHttpRequestFeature>()!.RawTarget;
        string? auth = ctx.Request.Headers.Authorization.Count > 0 ? ctx.Request.Headers.Authorization.ToString() : null;
        Requests.Enqueue(new SeenRequest(ctx.Connection.LocalPort, ctx.Request.Method, raw, auth, ctx.Request.Headers.Range.Count > 0 ? ctx.Request.Headers.Range.ToString() : null, ctx.Connection.Id));
        int q = raw.IndexOf('?', StringComparison.Ordinal);
        string path = q < 0 ? raw : raw[..q];
        string query = q < 0 ? "" : raw[(q + 1)..];
        var segments = path.TrimStart('/').Split('/').Select(Uri.UnescapeDataString).ToArray();
        var rawSegments = path.TrimStart('/').Split('/');

        if (ctx.Connection.LocalPort == CdnPort)
        {
            if (auth is not null)
            {
                Violations.Enqueue($"Authorization sent to the CDN: {raw}");
                ctx.Response.StatusCode = 400;
                await ctx.Response.WriteAsync("<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>");
                return;
            }
            // /xet/{repoIndex}/{sha256}?Expires=..&Signature=..
            if (segments.Length == 3 && segments[0] == "xet" && !query.Contains("Signature=sig", StringComparison.Ordinal))
            {
                ctx.Response.StatusCode = 403;
                return;
            }
            if (SignedUrlMaxUses > 0 && _signedUses.AddOrUpdate(query, 1, (_, n) => n + 1) > SignedUrlMaxUses)
            {
                ctx.Response.StatusCode = 403;
                await ctx.Response.WriteAsync("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>");
                return;
            }
            var cdnRepo = Repos[int.Parse(segments[1])];
            var cdnFile = cdnRepo.Files.First(f => f.Lfs && f.Sha256 == segments[2]);
            ctx.Response.Headers.ETag = $"\"{cdnFile.Sha256}\"";
            await ServeBodyAsync(ctx, cdnFile);
            return;
        }

        // per-token access
        string? token = auth is not null && auth.StartsWith("Bearer ", StringComparison.Ordinal) ? auth[7..] : null;
        if (token is not null && !ValidTokens.Contains(token))
        {
            await ErrorAsync(ctx, 401, null, "Invalid credentials in Authorization header", null);
            return;
        }

        if (segments[0] == "api" && segments.Length > 1 && segments[1] == "resolve-cache")
        {
            // /api/resolve-cache/{type}/{org}/{name}/{commit}/{path...}
            var r = FindRepo(segments[2], segments[3] + "/" + segments[4]);
            var filePath = string.Join('/', segments.Skip(6));
            var f = r!.Files.First(x => x.Path == filePath);
            ctx.Response.Headers.ETag = $"W/\"{f.GitOid}\"";
            await ServeBodyAsync(ctx, f);
            return;
        }

        if (segments[0] == "api" && segments.Length >= 6)
        {
            if (Interlocked.Decrement(ref _tooMany) >= 0)
            {
                ctx.Response.Headers.RetryAfter = "1";
                await ErrorAsync(ctx, 429, null, "rate limited", null);
                return;
            }
            var repo = FindRepo(segments[1], segments[2] + "/" + segments[3]);
            if (!await CheckAccessAsync(ctx, repo, token))
            {
                return;
            }
            string op = segments[4];
            string rev = segments[5];
            if (!repo!.Refs.TryGetValue(rev, out var commit) && rev != repo.Commit && !repo.Refs.ContainsValue(rev))
            {
                await ErrorAsync(ctx, 404, "RevisionNotFound", $"Invalid rev id: {rev}", null);
                return;
            }
            commit ??= rev;
            if (op == "revision")
            {
                await JsonAsync(ctx, new Dictionary<string, object> { ["id"] = repo.Id, ["sha"] = commit });
                return;
            }
            if (op == "tree" && query.Contains("recursive=true", StringComparison.Ordinal))
            {
                await TreeAsync(ctx, repo, commit, query);
                return;
            }
            ctx.Response.StatusCode = 404;
            return;
        }

        // /{datasets/}?{org}/{name}/resolve/{rev}/{path...}
        int offset = segments[0] == "datasets" ? 1 : 0;
        if (segments.Length >= offset + 5 && segments[offset + 2] == "resolve")
        {
            var repo = FindRepo(offset == 1 ? "datasets" : "models", segments[offset] + "/" + segments[offset + 1]);
            if (!await CheckAccessAsync(ctx, repo, token))
            {
                return;
            }
            string rev = segments[offset + 3];
            if (!repo!.Refs.TryGetValue(rev, out var commit) && rev != repo.Commit && !repo.Refs.ContainsValue(rev))
            {
                await ErrorAsync(ctx, 404, "RevisionNotFound", $"Invalid rev id: {rev}", null);
                return;
            }
            commit ??= rev;
            var filePath = string.Join('/', segments.Skip(offset + 4));
            var file = repo.Files.FirstOrDefault(f => f.Path == filePath);
            ctx.Response.Headers["X-Repo-Commit"] = commit;
            if (file is null || repo.Missing.Contains(filePath))
            {
                await ErrorAsync(ctx, 404, "EntryNotFound", $"{filePath} does not exist on \"{rev}\"", commit);
                return;
            }
            ctx.Response.Headers["X-Linked-Size"] = file.Content.Length.ToString();
            if (file.Lfs)
            {
                int index = Repos.IndexOf(repo);
                ctx.Response.Headers["X-Linked-Etag"] = $"\"{file.Sha256}\"";
                ctx.Response.Headers.ETag = $"\"{file.GitOid}\"";
                ctx.Response.Headers.Location = $"{Scheme}://127.0.0.1:{CdnPort}/xet/{index}/{file.Sha256}?Expires={Interlocked.Increment(ref _signatures)}&Signature=sig&Key-Pair-Id=K";
                ctx.Response.StatusCode = 302;
            }
            else
            {
                ctx.Response.Headers.ETag = $"W/\"{file.GitOid}\"";
                var rest = string.Join('/', rawSegments.Skip(offset + 4));
                ctx.Response.Headers.Location = $"/api/resolve-cache/{repo.Type}/{repo.Id}/{commit}/{rest}?etag=%22{file.GitOid}%22";
                ctx.Response.StatusCode = 307;
            }
            await ctx.Response.WriteAsync("Redirecting");
            return;
        }
        ctx.Response.StatusCode = 404;
    }

    private int _tooMany;
    private int _signatures = 1_000_000;
    private readonly ConcurrentDictionary<string, int> _signedUses = new();

    /// <summary>A signed CDN URL answers 403 (expired) after this many uses (0 = never expires).</summary>
    public int SignedUrlMaxUses { get; set; }

    /// <summary>Answer 429 (Retry-After: 1) to the next N API requests.</summary>
    public void RateLimitFirst(int n) => _tooMany = n;

    private FakeRepo? FindRepo(string type, string id) => Repos.FirstOrDefault(r => r.Id == id && r.Type == type);

    private async Task<bool> CheckAccessAsync(HttpContext ctx, FakeRepo? repo, string? token)
    {
        if (repo is null)
        {
            await ErrorAsync(ctx, token is null ? 401 : 404, "RepoNotFound", "Repository not found", null);
            return false;
        }
        if (repo.Disabled)
        {
            await ErrorAsync(ctx, 403, null, "Access to this resource is disabled.", null);
            return false;
        }
        if (repo.Gated && (token is null || !token.StartsWith("approved", StringComparison.Ordinal)))
        {
            await ErrorAsync(ctx, token is null ? 401 : 403, "GatedRepo", $"Access to model {repo.Id} is restricted.", null);
            return false;
        }
        return true;
    }

    private static async Task ErrorAsync(HttpContext ctx, int status, string? code, string message, string? commit)
    {
        ctx.Response.StatusCode = status;
        if (code is not null)
        {
            ctx.Response.Headers["X-Error-Code"] = code;
        }
        ctx.Response.Headers["X-Error-Message"] = message;
        ctx.Response.Headers["X-Request-Id"] = "Root=1-fake";
        if (commit is not null)
        {
            ctx.Response.Headers["X-Repo-Commit"] = commit;
        }
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = message }));
    }

    private static async Task JsonAsync(HttpContext ctx, object value)
    {
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(JsonSerializer.Serialize(value));
    }

    private async Task TreeAsync(HttpContext ctx, FakeRepo repo, string commit, string query)
    {
        var entries = new List<Dictionary<string, object>>();
        var dirs = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var f in repo.Files.Select(f => f.Path).Concat(repo.ExtraTreePaths))
        {
            var parts = f.Split('/');
            for (int i = 1; i < parts.Length; i++)
            {
                dirs.Add(string.Join('/', parts.Take(i)));
            }
        }
        foreach (var d in dirs)
        {
            entries.Add(new() { ["type"] = "directory", ["oid"] = new string('d', 40), ["size"] = 0, ["path"] = d });
        }
        foreach (var f in repo.Files)
        {
            var e = new Dictionary<string, object> { ["type"] = "file", ["oid"] = f.GitOid, ["size"] = f.Lfs ? Encoding.ASCII.GetByteCount(f.Pointer) : f.Content.Length, ["path"] = f.Path };
            if (f.Lfs)
            {
                e["lfs"] = new Dictionary<string, object> { ["oid"] = f.Sha256, ["size"] = f.ClaimedSize ?? f.Content.Length, ["pointerSize"] = Encoding.ASCII.GetByteCount(f.Pointer) };
                e["xetHash"] = new string('e', 64);
            }
            entries.Add(e);
        }
        foreach (var p in repo.ExtraTreePaths)
        {
            entries.Add(new() { ["type"] = "file", ["oid"] = GitOid([1]), ["size"] = 1, ["path"] = p });
        }
        entries = [.. entries.OrderBy(e => (string)e["path"], StringComparer.Ordinal)];
        int cursor = 0;
        foreach (var part in query.Split('&'))
        {
            if (part.StartsWith("cursor=", StringComparison.Ordinal))
            {
                cursor = int.Parse(part[7..]);
            }
        }
        var page = entries.Skip(cursor).Take(TreePageSize).ToList();
        Interlocked.Increment(ref _treePages);
        if (EndlessTree || cursor + TreePageSize < entries.Count)
        {
            ctx.Response.Headers.Link = $"<{Endpoint}/api/{repo.Type}/{repo.Id}/tree/{commit}?recursive=true&expand=false&cursor={cursor + TreePageSize}>; rel=\"next\"";
        }
        await JsonAsync(ctx, page);
    }

    private async Task ServeBodyAsync(HttpContext ctx, FakeFile file)
    {
        int nth = _requestCounts.AddOrUpdate(file.Path, 1, (_, n) => n + 1);
        long length = file.Content.Length;
        long start = 0, end = length - 1;
        string? range = ctx.Request.Headers.Range.Count > 0 ? ctx.Request.Headers.Range.ToString() : null;
        ctx.Response.Headers.AcceptRanges = "bytes";
        if (range is not null && !IgnoreRange)
        {
            var spec = range["bytes=".Length..].Split('-');
            start = long.Parse(spec[0]);
            end = spec[1].Length > 0 ? Math.Min(long.Parse(spec[1]), length - 1) : length - 1;
            if (start >= length || Force416Once.Remove(file.Path))
            {
                ctx.Response.StatusCode = 416;
                ctx.Response.Headers.ContentRange = $"bytes */{length}";
                return;
            }
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {start}-{end}/{length}";
        }
        else
        {
            ctx.Response.StatusCode = 200;
        }
        long count = Math.Max(0, end - start + 1);
        ctx.Response.ContentLength = count;
        var content = file.Content;
        if (Corrupt.Contains(file.Path) || (nth == 1 && CorruptOnce.Contains(file.Path)))
        {
            content = (byte[])content.Clone();
            for (int i = 0; i < content.Length; i += 4096)
            {
                content[i] ^= 0xFF;
            }
        }
        long? cut = CutAfter(file.Path, nth);
        long sent = 0;
        const int piece = 64 * 1024;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (sent < count)
        {
            int n = (int)Math.Min(piece, count - sent);
            if (cut is { } c && sent + n > c)
            {
                n = (int)Math.Max(0, c - sent);
                if (n > 0)
                {
                    await ctx.Response.Body.WriteAsync(content.AsMemory((int)(start + sent), n));
                    await ctx.Response.Body.FlushAsync();
                    BytesServed.AddOrUpdate(file.Path, n, (_, v) => v + n);
                }
                await Task.Delay(50);
                ctx.Abort();
                return;
            }
            try
            {
                await ctx.Response.Body.WriteAsync(content.AsMemory((int)(start + sent), n), ctx.RequestAborted);
            }
            catch (Exception) when (ctx.RequestAborted.IsCancellationRequested)
            {
                return;
            }
            sent += n;
            BytesServed.AddOrUpdate(file.Path, n, (_, v) => v + n);
            if (ThrottleBytesPerSecond > 0)
            {
                var due = TimeSpan.FromSeconds((double)sent / ThrottleBytesPerSecond) - clock.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }
}
