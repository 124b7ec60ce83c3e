using System.Collections.Concurrent;
using System.Net;
using System.Text;
using ModelCar.Oci;

namespace ModelCar.TestSupport;

/// <summary>A blob in memory that can be read again from any offset; counts the re-reads.</summary>
public sealed class MemoryBlob(byte[] data) : IRereadableBlob
{
    public long Size => data.Length;

    public ConcurrentQueue<long> Opened { get; } = new();

    public Stream OpenAt(long offset)
    {
        Opened.Enqueue(offset);
        return new MemoryStream(data, (int)offset, data.Length - (int)offset, writable: false);
    }
}

/// <summary>What the fake registry does with one request.</summary>
public enum UploadFault
{
    None,
    Status503,
    Status429,
    /// <summary>Read half the body, keep nothing, cut (a buffering front proxy): the session stays as it was.</summary>
    CutDrop,
    /// <summary>Read half the body, keep it, cut: the session holds the partial bytes and says so in Range.</summary>
    CutKeep,
    /// <summary>Read half the body, keep it, cut, and kill the session (CNCF distribution 2.8): the next PATCH/PUT gets 404 BLOB_UPLOAD_INVALID.</summary>
    CutKill,
    /// <summary>Read part of the body, then answer 401 (the token expired): a proxy that drains before it answers.</summary>
    Unauthorized,
    /// <summary>Read and keep the whole body, then never answer (until the client gives up).</summary>
    NoAnswer,
}

/// <summary>
/// An upload endpoint at the HttpMessageHandler level that reads request bodies as a socket would
/// (CopyToAsync into a sink that can cut, pause or count), keeps the bytes per session, answers
/// Range, checks Content-Range offsets (416) and the digest of PUT ?digest= (DIGEST_INVALID).
/// </summary>
public sealed class FakeUploadRegistry : HttpMessageHandler
{
    public sealed class Session
    {
        public MemoryStream Data { get; } = new();
        public bool Dead { get; set; }
    }

    private readonly ConcurrentDictionary<string, int> _counts = new();
    private int _posts;

    public ConcurrentDictionary<string, Session> Sessions { get; } = new();

    public ConcurrentQueue<string> Log { get; } = new();

    public ConcurrentQueue<string> Deletes { get; } = new();

    /// <summary>The fault for the n-th (1-based) request of a method.</summary>
    public Func<string, int, UploadFault> Decide { get; set; } = (_, _) => UploadFault.None;

    public long MinChunk { get; set; }

    /// <summary>Body bytes read from the client (kept or not).</summary>
    public long Received => Interlocked.Read(ref _received);

    private long _received;

    public int Posts => _posts;

    public byte[]? Final { get; private set; }

    public List<long> PutBodyLengths { get; } = [];

    /// <summary>When set: requests must carry Basic sa:CurrentPassword, else 401 with a Basic challenge.</summary>
    public string? CurrentPassword { get; set; }

    /// <summary>When set: a body read pauses after this many bytes (of the whole run) until <see cref="Gate"/> is released.</summary>
    public long? PauseAfter { get; set; }

    public SemaphoreSlim Gate { get; } = new(0);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        var method = request.Method.Method;
        int n = _counts.AddOrUpdate(method, 1, (_, c) => c + 1);
        var path = request.RequestUri!.AbsolutePath;
        var range = request.Content?.Headers.TryGetValues("Content-Range", out var v) == true ? v.First() : null;
        Log.Enqueue($"{method} {path}{(range is null ? "" : " " + range)}");
        if (CurrentPassword is { } pw && request.Headers.Authorization?.ToString() != "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("sa:" + pw)))
        {
            return Challenge(request);
        }
        var fault = Decide(method, n);
        switch (fault)
        {
            case UploadFault.Status503:
                return Answer(request, HttpStatusCode.ServiceUnavailable);
            case UploadFault.Status429:
            {
                var r = Answer(request, HttpStatusCode.TooManyRequests);
                r.Headers.TryAddWithoutValidation("Retry-After", "0");
                return r;
            }
        }
        if (method == "POST")
        {
            var id = $"s{Interlocked.Increment(ref _posts)}";
            Sessions[id] = new Session();
            var r = Answer(request, HttpStatusCode.Accepted);
            r.Headers.TryAddWithoutValidation("Location", $"/v2/org/model/blobs/uploads/{id}?_state=0");
            if (MinChunk > 0)
            {
                r.Headers.TryAddWithoutValidation("OCI-Chunk-Min-Length", MinChunk.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            return r;
        }
        if (method == "HEAD")
        {
            return Answer(request, HttpStatusCode.NotFound);
        }
        var sid = path[(path.LastIndexOf('/') + 1)..];
        if (!Sessions.TryGetValue(sid, out var session) || (session.Dead && method is "PATCH" or "PUT"))
        {
            return Answer(request, HttpStatusCode.NotFound, session is null
                ? """{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}"""
                : """{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"upload resumed at wrong offset"}]}""");
        }
        switch (method)
        {
            case "GET":
            {
                var r = Answer(request, HttpStatusCode.NoContent);
                r.Headers.TryAddWithoutValidation("Range", $"0-{Math.Max(session.Data.Length - 1, 0)}");
                r.Headers.TryAddWithoutValidation("Location", $"/v2/org/model/blobs/uploads/{sid}?_state={session.Data.Length}");
                return r;
            }
            case "DELETE":
                Deletes.Enqueue(sid);
                Sessions.TryRemove(sid, out _);
                return Answer(request, HttpStatusCode.NoContent);
            case "PATCH":
            {
                if (range is not null && long.Parse(range.Split('-')[0], System.Globalization.CultureInfo.InvariantCulture) != session.Data.Length)
                {
                    return Answer(request, HttpStatusCode.RequestedRangeNotSatisfiable);
                }
                long length = request.Content!.Headers.ContentLength ?? throw new InvalidOperationException("PATCH without Content-Length");
                long limit = fault switch
                {
                    UploadFault.CutDrop or UploadFault.CutKeep or UploadFault.CutKill => length / 2,
                    UploadFault.Unauthorized => length / 2,
                    _ => long.MaxValue,
                };
                var sink = new Sink(this, limit);
                try
                {
                    await request.Content.CopyToAsync(sink, ct);
                }
                catch (Exception) when (sink.Cut)
                {
                    // HttpContent.CopyToAsync wraps the sink's exception: the flag says it was ours
                    if (fault == UploadFault.Unauthorized)
                    {
                        return Challenge(request);
                    }
                    if (fault is UploadFault.CutKeep or UploadFault.CutKill)
                    {
                        session.Data.Write(sink.Bytes.ToArray());
                    }
                    session.Dead = fault == UploadFault.CutKill;
                    throw new HttpRequestException("connection reset (fake)", new IOException("reset"));
                }
                if (sink.Bytes.Length != length)
                {
                    throw new InvalidOperationException($"body of {sink.Bytes.Length} bytes where Content-Length said {length}");
                }
                session.Data.Write(sink.Bytes.ToArray());
                if (fault == UploadFault.NoAnswer)
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                var r = Answer(request, HttpStatusCode.Accepted);
                r.Headers.TryAddWithoutValidation("Location", $"/v2/org/model/blobs/uploads/{sid}?_state={session.Data.Length}");
                r.Headers.TryAddWithoutValidation("Range", $"0-{session.Data.Length - 1}");
                return r;
            }
            case "PUT":
            {
                var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(ct);
                lock (PutBodyLengths)
                {
                    PutBodyLengths.Add(body.Length);
                }
                session.Data.Write(body);
                var digest = Digest.Sha256(session.Data.ToArray()).ToString();
                var expected = Uri.UnescapeDataString(request.RequestUri.Query.Split("digest=")[1].Split('&')[0]);
                if (digest != expected)
                {
                    return Answer(request, HttpStatusCode.BadRequest, """{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}""");
                }
                Final = session.Data.ToArray();
                Sessions.TryRemove(sid, out _);
                var r = Answer(request, HttpStatusCode.Created);
                r.Headers.TryAddWithoutValidation("Docker-Content-Digest", digest);
                return r;
            }
        }
        return Answer(request, HttpStatusCode.MethodNotAllowed);
    }

    private static HttpResponseMessage Answer(HttpRequestMessage request, HttpStatusCode status, string? json = null)
    {
        var r = new HttpResponseMessage(status) { RequestMessage = request };
        if (json is not null)
        {
            r.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }
        return r;
    }

    private static HttpResponseMessage Challenge(HttpRequestMessage request)
    {
        var r = Answer(request, HttpStatusCode.Unauthorized);
        r.Headers.TryAddWithoutValidation("WWW-Authenticate", "Basic realm=\"fake\"");
        return r;
    }

    private sealed class CutException() : IOException("cut (fake)");

    /// <summary>The "socket": collects the body, cuts after a limit, pauses at the gate.</summary>
    private sealed class Sink(FakeUploadRegistry owner, long limit) : Stream
    {
        public MemoryStream Bytes { get; } = new();

        public bool Cut { get; private set; }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Bytes.Length;
        public override long Position { get => Bytes.Length; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (!buffer.IsEmpty)
            {
                if (Bytes.Length >= limit)
                {
                    Cut = true;
                    throw new CutException();
                }
                if (owner.PauseAfter is { } pause && owner.Received >= pause)
                {
                    await owner.Gate.WaitAsync(cancellationToken);
                    owner.Gate.Release();
                    owner.PauseAfter = null;
                }
                int take = (int)Math.Min(Math.Min(buffer.Length, limit - Bytes.Length), 64 << 10);
                Bytes.Write(buffer.Span[..take]);
                Interlocked.Add(ref owner._received, take);
                buffer = buffer[take..];
            }
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
