using System.Net;
using ModelCar.Common.Logging;

namespace ModelCar.Common.Http;

/// <summary>
/// An HTTP answer that ends the operation: one line with method, redacted URL, status and the
/// server's own error code and message where the protocol has one, and the library's hint (never a
/// CLI flag). The constructor's <c>cause</c> is the library's typed case (e.g. a registry's
/// <c>RegistryReason.Unauthorized</c>, the Hub's <c>HubReason.GatedRepo</c>) for the command to add
/// which option to change. Transient when the status is (408, 429, 5xx).
/// </summary>
public sealed class HttpFailureException : ModelCarException
{
    public HttpFailureException(HttpMethod method, Uri? url, HttpStatusCode status, string? reason, string? serverCode, string? serverMessage, string? hint = null,
        Enum? cause = null)
        : base(Format(method, url, status, reason, serverCode, serverMessage, hint), null, HttpRetry.IsTransient(status), cause)
    {
        Method = method;
        Status = status;
        ServerCode = serverCode;
        ServerMessage = serverMessage;
    }

    public HttpMethod Method { get; }
    public HttpStatusCode Status { get; }
    public string? ServerCode { get; }
    public string? ServerMessage { get; }

    private static string Format(HttpMethod method, Uri? url, HttpStatusCode status, string? reason, string? code, string? message, string? hint)
    {
        var text = $"{method} {Redactor.Url(url)}: {(int)status} {reason ?? status.ToString()}";
        if (!string.IsNullOrWhiteSpace(code))
        {
            text += $": {code}";
        }
        if (!string.IsNullOrWhiteSpace(message))
        {
            text += $": {Trim(message)}";
        }
        if (!string.IsNullOrWhiteSpace(hint))
        {
            text += $" ({hint})";
        }
        return text;
    }

    private static string Trim(string s)
    {
        s = s.ReplaceLineEndings(" ").Trim();
        return s.Length > 300 ? s[..300] + "…" : s;
    }
}
