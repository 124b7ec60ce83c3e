using System.Collections.Concurrent;
using System.Net;

namespace ModelCar.TestSupport;

/// <summary>
/// In-process fake at the HttpMessageHandler level: a routing function answers each request, and
/// every request (method, URL, headers, body) is logged for assertions.
/// </summary>
public sealed class FakeHttpHandler(Func<HttpRequestMessage, byte[]?, Task<HttpResponseMessage>> respond) : HttpMessageHandler
{
    public sealed record Call(HttpMethod Method, Uri Uri, IReadOnlyDictionary<string, string> Headers, byte[]? Body);

    public ConcurrentQueue<Call> Calls { get; } = new();

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        byte[]? body = request.Content is null ? null : await request.Content.ReadAsByteArrayAsync(cancellationToken);
        var headers = request.Headers.Concat(request.Content?.Headers ?? Enumerable.Empty<KeyValuePair<string, IEnumerable<string>>>())
            .ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase);
        Calls.Enqueue(new Call(request.Method, request.RequestUri!, headers, body));
        var response = await respond(request, body);
        response.RequestMessage ??= request;
        return response;
    }

    public static HttpResponseMessage Status(HttpStatusCode code, string? body = null, string contentType = "application/json")
    {
        var r = new HttpResponseMessage(code);
        if (body is not null)
        {
            r.Content = new StringContent(body, System.Text.Encoding.UTF8, contentType);
        }
        return r;
    }
}
