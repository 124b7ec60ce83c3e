using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace ModelCar.Common.Logging;

/// <summary>
/// Keeps secrets out of every line the tools print. Known secret values (tokens, passwords, the
/// Basic header built from them) are registered when read; on top of that, patterns catch
/// Authorization headers, bearer/basic credentials, JSON token fields and URL query values that
/// are not on a short allow-list (signed CDN URLs carry their signature in the query), and the
/// user-info of any <c>scheme://user:password@host</c> in the text (an <c>--endpoint</c> or
/// <c>--dest</c> echoed in a usage error). <see cref="PublicUrl"/> gives the form of a URL that may
/// be stored or published (snapshot.json, image annotations): no user-info, no query at all.
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
        text = UserInfo().Replace(text, m => m.Groups[1].Value + Mask + "@");
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

    /// <summary>
    /// A URL fit to be stored or published: scheme, host, port and path only. User-info, query and
    /// fragment are dropped (they carry passwords, tokens and signatures). Text that is not an
    /// absolute URL is returned with the same parts cut out.
    /// </summary>
    public static string PublicUrl(string url)
    {
        if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
        {
            var builder = new UriBuilder(uri) { UserName = string.Empty, Password = string.Empty, Query = string.Empty, Fragment = string.Empty };
            var clean = builder.Uri.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);
            // keep the caller's form: no trailing '/' added to a bare host
            return url.TrimEnd().EndsWith('/') || uri.AbsolutePath != "/" ? clean : clean.TrimEnd('/');
        }
        var cut = url.IndexOfAny(['?', '#']);
        var head = cut >= 0 ? url[..cut] : url;
        return UserInfo().Replace(head, m => m.Groups[1].Value);
    }

    /// <summary><c>scheme://user[:password]@</c> (up to the last '@' before the first '/').</summary>
    [GeneratedRegex(@"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s""'<>]+@")]
    private static partial Regex UserInfo();

    [GeneratedRegex(@"(?i)(\bauthorization""?\s*[:=]\s*""?(?:[A-Za-z]+\s+)?)[^\s"",;]+")]
    private static partial Regex AuthorizationHeader();

    [GeneratedRegex(@"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")]
    private static partial Regex SchemeCredential();

    [GeneratedRegex(@"(?i)(""(?:token|access_token|refresh_token|password|identitytoken|auth|secret)""\s*:\s*"")[^""]*""")]
    private static partial Regex JsonSecretField();

    // the value ends before punctuation that ends the URL in a sentence ("…?_state=X: 413 …" keeps its colon)
    [GeneratedRegex(@"([?&])([A-Za-z0-9_.\-]+)=[^&\s""'#]*?(?=[:;,.)]*(?:[&\s""'#]|$))")]
    private static partial Regex QueryValue();
}
