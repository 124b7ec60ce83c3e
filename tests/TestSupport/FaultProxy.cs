using System.Collections.Concurrent;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;

namespace ModelCar.TestSupport;

/// <summary>What the proxy does with one request.</summary>
public enum Fault
{
    Forward,
    /// <summary>Answer 503 without forwarding.</summary>
    Unavailable,
    /// <summary>Answer 429 with Retry-After: 0 without forwarding.</summary>
    TooMany,
    /// <summary>Answer 401 with a Basic challenge without forwarding (an expired token).</summary>
    Unauthorized,
    /// <summary>Answer 413 (an nginx body limit) without forwarding.</summary>
    TooLarge,
    /// <summary>Answer 403 DENIED without forwarding.</summary>
    Denied,
    /// <summary>Read part of the body, then cut the client connection; nothing reaches the registry (a buffering front proxy).</summary>
    CutBeforeForward,
    /// <summary>Forward half of the body to the registry, then cut both connections (the registry keeps partial bytes).</summary>
    CutMidForward,
    /// <summary>Read part of the body, forward nothing and never answer (until the client goes away): a buffering front proxy when the client is killed.</summary>
    Hold,
    /// <summary>Forward half of the body to the registry (then abort that), and never answer the client (until it goes away).</summary>
    HoldAfterHalfForward,
}

/// <summary>
/// An HTTP proxy on 127.0.0.1 between the tool and the registry that can inject faults per request,
/// and counts and logs everything ("METHOD /path → status").
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly HttpClient _upstream;
    private readonly Uri _target;
    private TestServer? _server;
    private int _count;

    private FaultProxy(Uri target)
    {
        _target = target;
        _upstream = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>Decides the fault for request number n (1-based) given method and path.</summary>
    public Func<int, string, string, Fault> Decide { get; set; } = (_, _, _) => Fault.Forward;

    public ConcurrentQueue<string> Log { get; } = new();

    /// <summary>Completed when a request is being held (Fault.Hold / HoldAfterHalfForward).</summary>
    public TaskCompletionSource Held { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ResetHeld() => Held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    private long _patchBytes;

    /// <summary>Body bytes of PATCH requests that the proxy read from the client (forwarded or not).</summary>
    public long PatchBytes => Interlocked.Read(ref _patchBytes);

    public void ResetCounters()
    {
        Interlocked.Exchange(ref _patchBytes, 0);
        Interlocked.Exchange(ref _bodyBytes, 0);
    }

    private long _bodyBytes;

    /// <summary>Request body bytes (any method) forwarded to the registry, counted as they pass (not the declared length).</summary>
    public long BodyBytes => Interlocked.Read(ref _bodyBytes);

    /// <summary>Forward a request body only once all of it arrived (a buffering front proxy); a body cut earlier reaches the registry not at all.</summary>
    public bool BufferBodies { get; set; }

    /// <summary>When above 0, forwarded request bodies pass at most this many bytes per second (each request on its own).</summary>
    public long ThrottleBytesPerSecond { get; set; }

    public int Requests => _count;

    public string HostPort => _server!.HostPort;

    public static async Task<FaultProxy> StartAsync(Uri target)
    {
        var proxy = new FaultProxy(target);
        proxy._server = await TestServer.StartAsync(proxy.HandleAsync);
        return proxy;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        int n = Interlocked.Increment(ref _count);
        var method = ctx.Request.Method;
        var path = ctx.Request.Path + ctx.Request.QueryString;
        var fault = Decide(n, method, ctx.Request.Path.Value ?? "/");
        switch (fault)
        {
            case Fault.Unavailable:
                Log.Enqueue($"{method} {ctx.Request.Path} -> 503 (injected)");
                await Drain(ctx);
                ctx.Response.StatusCode = 503;
                return;
            case Fault.TooMany:
                Log.Enqueue($"{method} {ctx.Request.Path} -> 429 (injected)");
                await Drain(ctx);
                ctx.Response.StatusCode = 429;
                ctx.Response.Headers.RetryAfter = "0";
                return;
            case Fault.Unauthorized:
                Log.Enqueue($"{method} {ctx.Request.Path} -> 401 (injected)");
                await Drain(ctx);
                ctx.Response.StatusCode = 401;
                ctx.Response.Headers.WWWAuthenticate = "Basic realm=\"modelcar-test\"";
                return;
            case Fault.TooLarge:
                Log.Enqueue($"{method} {ctx.Request.Path} -> 413 (injected)");
                ctx.Response.StatusCode = 413;
                ctx.Response.ContentType = "text/html";
                await ctx.Response.WriteAsync("<html><body><h1>413 Request Entity Too Large</h1></body></html>");
                return;
            case Fault.Denied:
                Log.Enqueue($"{method} {ctx.Request.Path} -> 403 (injected)");
                await Drain(ctx);
                ctx.Response.StatusCode = 403;
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync("""{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}""");
                return;
            case Fault.Hold:
            {
                Log.Enqueue($"{method} {ctx.Request.Path} -> held, nothing forwarded (injected)");
                var buffer = new byte[65536];
                try
                {
                    int r = await ctx.Request.Body.ReadAsync(buffer, ctx.RequestAborted);
                    if (method == "PATCH")
                    {
                        Interlocked.Add(ref _patchBytes, r);
                    }
                    Held.TrySetResult();
                    await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
                }
                catch (Exception)
                {
                    // the client went away
                }
                return;
            }
            case Fault.CutBeforeForward:
            {
                Log.Enqueue($"{method} {ctx.Request.Path} -> cut before forwarding (injected)");
                long half = (ctx.Request.ContentLength ?? 0) / 2;
                var buffer = new byte[65536];
                long read = 0;
                while (read < half)
                {
                    int r = await ctx.Request.Body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, half - read)));
                    if (r == 0)
                    {
                        break;
                    }
                    read += r;
                }
                ctx.Abort();
                return;
            }
        }

        var url = new Uri(_target, path);
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        long? length = ctx.Request.ContentLength;
        if (method == "PATCH")
        {
            Interlocked.Add(ref _patchBytes, fault is Fault.CutMidForward or Fault.HoldAfterHalfForward ? (length ?? 0) / 2 : length ?? 0);
        }
        if (length is > 0 || method is "PUT" or "PATCH" or "POST")
        {
            Stream body = ctx.Request.Body;
            if (fault is Fault.CutMidForward or Fault.HoldAfterHalfForward)
            {
                body = new CuttingStream(body, (length ?? 0) / 2);
            }
            body = new CountingStream(body, this);
            if (BufferBodies && fault == Fault.Forward)
            {
                // a buffering front proxy (nginx's proxy_request_buffering): the whole body, or nothing, reaches the registry
                var whole = new MemoryStream();
                try
                {
                    await body.CopyToAsync(whole, ctx.RequestAborted);
                }
                catch (Exception)
                {
                    Log.Enqueue($"{method} {ctx.Request.Path} -> client went away mid-body, nothing forwarded (buffering)");
                    ctx.Abort();
                    return;
                }
                whole.Position = 0;
                body = whole;
            }
            request.Content = new StreamContent(body);
            if (length is { } l)
            {
                request.Content.Headers.ContentLength = l;
            }
        }
        foreach (var (key, values) in ctx.Request.Headers)
        {
            if (key is "Host" or "Content-Length" or "Transfer-Encoding" or "Connection")
            {
                continue;
            }
            if (!request.Headers.TryAddWithoutValidation(key, (IEnumerable<string>)values))
            {
                request.Content?.Headers.TryAddWithoutValidation(key, (IEnumerable<string>)values);
            }
        }
        request.Headers.Host = ctx.Request.Host.Value;
        HttpResponseMessage response;
        try
        {
            response = await _upstream.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ctx.RequestAborted);
        }
        catch (Exception) when (fault == Fault.HoldAfterHalfForward)
        {
            Log.Enqueue($"{method} {ctx.Request.Path} -> half the body forwarded, then held (injected)");
            Held.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
            return;
        }
        catch (Exception) when (fault == Fault.CutMidForward || ctx.RequestAborted.IsCancellationRequested)
        {
            Log.Enqueue($"{method} {ctx.Request.Path} -> cut after forwarding half the body (injected)");
            ctx.Abort();
            return;
        }
        using (response)
        {
            Log.Enqueue($"{method} {ctx.Request.Path} -> {(int)response.StatusCode}");
            ctx.Response.StatusCode = (int)response.StatusCode;
            foreach (var (key, values) in response.Headers.Concat(response.Content.Headers))
            {
                if (key is "Transfer-Encoding" or "Connection")
                {
                    continue;
                }
                ctx.Response.Headers[key] = values.ToArray();
            }
            await response.Content.CopyToAsync(ctx.Response.Body, ctx.RequestAborted);
        }
    }

    private static async Task Drain(HttpContext ctx)
    {
        try
        {
            await ctx.Request.Body.CopyToAsync(Stream.Null);
        }
        catch (Exception)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        _upstream.Dispose();
    }

    /// <summary>Counts the forwarded body bytes into <see cref="BodyBytes"/> and applies <see cref="ThrottleBytesPerSecond"/>.</summary>
    private sealed class CountingStream(Stream inner, FaultProxy proxy) : Stream
    {
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
        private long _passed;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _passed; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            long rate = proxy.ThrottleBytesPerSecond;
            if (rate > 0)
            {
                buffer = buffer[..(int)Math.Min(buffer.Length, Math.Max(rate / 20, 1))];
                var due = TimeSpan.FromSeconds((double)_passed / rate) - _clock.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, cancellationToken);
                }
            }
            int n = await inner.ReadAsync(buffer, cancellationToken);
            _passed += n;
            Interlocked.Add(ref proxy._bodyBytes, n);
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Passes through <c>limit</c> bytes, then fails (the upstream request is aborted mid-body).</summary>
    private sealed class CuttingStream(Stream inner, long limit) : Stream
    {
        private long _passed;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _passed; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_passed >= limit)
            {
                throw new IOException("cut by the fault proxy");
            }
            int n = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, limit - _passed)], cancellationToken);
            _passed += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
