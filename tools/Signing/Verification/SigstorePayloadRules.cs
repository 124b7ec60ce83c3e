using System.Text.Json;
using ModelCar.Oci;

namespace ModelCar.Signing.Verification;

/// <summary>
/// The payload rules containers/image applies to a cosign signature (signature/internal/sigstore_payload.go),
/// written again here, apart from the signing code: the top level has exactly <c>critical</c> and
/// <c>optional</c>; <c>critical</c> exactly <c>type</c>, <c>image</c>, <c>identity</c>; <c>image</c>
/// exactly <c>docker-manifest-digest</c>; <c>identity</c> exactly <c>docker-reference</c>; <c>type</c>
/// is "cosign container image signature"; <c>optional</c> is null or an object (creator a string,
/// timestamp an integer). Duplicate keys are refused (the paranoid decoder does).
/// </summary>
public static class SigstorePayloadRules
{
    public sealed record Payload(Digest ManifestDigest, string DockerReference);

    /// <summary>The payload's digest and reference, or a one-line reason it is not acceptable.</summary>
    public static (Payload? Payload, string? Error) Parse(ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var top = Exact(doc.RootElement, "payload", "critical", "optional");
            var optional = top["optional"];
            if (optional.ValueKind != JsonValueKind.Null)
            {
                var fields = Fields(optional, "optional");
                if (fields.TryGetValue("creator", out var creator) && creator.ValueKind != JsonValueKind.String)
                {
                    return (null, "optional.creator is not a string");
                }
                if (fields.TryGetValue("timestamp", out var ts) && (ts.ValueKind != JsonValueKind.Number || !ts.TryGetInt64(out _)))
                {
                    return (null, "optional.timestamp is not an integer");
                }
            }
            var critical = Exact(top["critical"], "critical", "type", "image", "identity");
            if (critical["type"].ValueKind != JsonValueKind.String || critical["type"].GetString() != "cosign container image signature")
            {
                return (null, $"unrecognized signature type {critical["type"].GetRawText()}");
            }
            var image = Exact(critical["image"], "critical.image", "docker-manifest-digest");
            var identity = Exact(critical["identity"], "critical.identity", "docker-reference");
            if (image["docker-manifest-digest"].ValueKind != JsonValueKind.String || !Digest.TryParse(image["docker-manifest-digest"].GetString(), out var digest))
            {
                return (null, "invalid docker-manifest-digest");
            }
            if (identity["docker-reference"].ValueKind != JsonValueKind.String || identity["docker-reference"].GetString() is not { Length: > 0 } reference)
            {
                return (null, "docker-reference is not a non-empty string");
            }
            return (new Payload(digest, reference), null);
        }
        catch (JsonException e)
        {
            return (null, $"payload is not JSON: {e.Message}");
        }
        catch (FormatException e)
        {
            return (null, e.Message);
        }
    }

    /// <summary>
    /// matchRepository (signature/policy_reference_match.go): the signed reference and the image's
    /// have the same repository name; tags and digests do not matter. The image's name is HOST[:PORT]/REPO.
    /// </summary>
    public static bool MatchRepository(string signedReference, string imageRepository) =>
        RepositoryName(signedReference) is { } signed && signed == RepositoryName(imageRepository);

    /// <summary>HOST[:PORT]/PATH without :TAG or @DIGEST; null when it is not a reference with a host.</summary>
    public static string? RepositoryName(string reference)
    {
        var name = reference;
        int at = name.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            name = name[..at];
        }
        int slash = name.LastIndexOf('/');
        int colon = name.LastIndexOf(':');
        if (colon > slash && slash >= 0)
        {
            name = name[..colon];
        }
        if (slash <= 0 || name.Any(c => char.IsUpper(c) || char.IsWhiteSpace(c)))
        {
            return null;
        }
        return name;
    }

    private static Dictionary<string, JsonElement> Fields(JsonElement e, string what)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{what} is not a JSON object");
        }
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in e.EnumerateObject())
        {
            if (!fields.TryAdd(p.Name, p.Value))
            {
                throw new FormatException($"duplicate key \"{p.Name}\" in {what}");
            }
        }
        return fields;
    }

    private static Dictionary<string, JsonElement> Exact(JsonElement e, string what, params string[] names)
    {
        var fields = Fields(e, what);
        foreach (var n in names)
        {
            if (!fields.ContainsKey(n))
            {
                throw new FormatException($"{what}: missing field \"{n}\"");
            }
        }
        if (fields.Keys.FirstOrDefault(k => !names.Contains(k)) is { } extra)
        {
            throw new FormatException($"{what}: unexpected field \"{extra}\"");
        }
        return fields;
    }
}
