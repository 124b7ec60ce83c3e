using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace ModelCar.Common.Logging;

/// <summary>
/// Keeps secrets out of every line the tools print. Known secret values (tokens, passwords, the
/// Basic header built from them) are registered when read; on top of that, patterns catch
/// Authorization headers, bearer/basic credentials, JSON token fields and URL query values that
/// are not on a short allow-list (signed CDN URLs carry their signature in the query).
/// </summary>
public static partial class Redactor
{
    public const string Mask = "***";

    private static readonly ConcurrentDictionary<string, byte> Secrets = new(StringComparer.Ordinal);

    private static readonly HashSet<string> SafeQueryKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        "digest", "mount", "from", "n", "last", "scope", "service", "recursive", "expand", "cursor",
        "name", "externalId", "parentResourceId", "pageSize", "orderBy", "sortOrder", "artifactType",
        "nextPageToken", "blobs",
    };

    /// <summary>Registers a secret value: it is masked wherever it appears later.</summary>
    public static void AddSecret(string? secret)
    {
        if (string.IsNullOrEmpty(secret) || secret.Length < 3)
        {
            return;
        }
        Secrets.TryAdd(secret, 0);
        var trimmed = secret.Trim();
        if (trimmed.Length >= 3 && trimmed != secret)
        {
            Secrets.TryAdd(trimmed, 0);
        }
        Secrets.TryAdd(Uri.EscapeDataString(secret), 0);
    }

    public static string Redact(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text ?? string.Empty;
        }
        foreach (var secret in Secrets.Keys.OrderByDescending(s => s.Length))
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }
        text = AuthorizationHeader().Replace(text, m => m.Groups[1].Value + Mask);
        text = SchemeCredential().Replace(text, m => m.Groups[1].Value + " " + Mask);
        text = JsonSecretField().Replace(text, m => m.Groups[1].Value + Mask + "\"");
        text = QueryValue().Replace(text, m =>
            SafeQueryKeys.Contains(m.Groups[2].Value) ? m.Value : m.Groups[1].Value + m.Groups[2].Value + "=" + Mask);
        return text;
    }

    /// <summary>A URL for logs: no user-info, query values masked unless known to be harmless.</summary>
    public static string Url(Uri? uri)
    {
        if (uri is null)
        {
            return string.Empty;
        }
        if (!uri.IsAbsoluteUri)
        {
            return Redact(uri.OriginalString);
        }
        var builder = new UriBuilder(uri) { UserName = string.Empty, Password = string.Empty };
        return Redact(builder.Uri.GetComponents(UriComponents.SchemeAndServer | UriComponents.PathAndQuery, UriFormat.UriEscaped));
    }

    [GeneratedRegex(@"(?i)(\bauthorization""?\s*[:=]\s*""?(?:[A-Za-z]+\s+)?)[^\s"",;]+")]
    private static partial Regex AuthorizationHeader();

    [GeneratedRegex(@"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")]
    private static partial Regex SchemeCredential();

    [GeneratedRegex(@"(?i)(""(?:token|access_token|refresh_token|password|identitytoken|auth|secret)""\s*:\s*"")[^""]*""")]
    private static partial Regex JsonSecretField();

    [GeneratedRegex(@"([?&])([A-Za-z0-9_.\-]+)=[^&\s""'#]*")]
    private static partial Regex QueryValue();
}
