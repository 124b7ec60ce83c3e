using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ModelCar.Oci;

namespace ModelCar.Signing;

/// <summary>
/// Sigstore bundles v0.3 (sigstore/protobuf-specs sigstore_bundle.proto, JSON as protojson writes it)
/// holding a DSSE envelope, key-based: <c>verificationMaterial.publicKey.hint</c> names the key, no
/// certificate, no transparency-log entry (<c>tlogEntries: []</c>), no timestamp. Verifiers are given
/// the public key as trust material (cosign verify --key, @sigstore/verify's toTrustMaterial, model_signing
/// verify key). Two hint conventions exist and each verifier looks its own up:
/// cosign: base64 of sha256 of the key's DER SubjectPublicKeyInfo (cosign internal/key/svkeypair.go);
/// model_signing: hex of sha256 of the key's PEM (model-transparency _signing/sign_ec_key.py, compared exactly).
/// </summary>
public static class SigstoreBundle
{
    public const string MediaType = "application/vnd.dev.sigstore.bundle.v0.3+json";

    /// <summary>cosign v3's predicate for an image signature stored as a bundle (cosign pkg/types/predicate.go).</summary>
    public const string CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1";

    /// <summary>Referrer manifest annotations cosign v3 writes (pkg/oci/remote/write.go WriteAttestationNewBundleFormat).</summary>
    public const string PredicateTypeAnnotation = "dev.sigstore.bundle.predicateType";
    public const string ContentAnnotation = "dev.sigstore.bundle.content";

    public const int MaxBundleBytes = 4 << 20;

    public static string CosignHint(VerificationKey key) => Convert.ToBase64String(SHA256.HashData(key.Spki));

    public static string ModelSigningHint(VerificationKey key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key.Pem)));

    /// <summary>A bundle with <paramref name="statement"/> (an in-toto Statement) DSSE-signed by <paramref name="key"/>.</summary>
    public static byte[] SignStatement(SigningKey key, byte[] statement, string hint)
    {
        var signature = key.Sign(Dsse.Pae(Dsse.InTotoPayloadType, statement));
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("mediaType", MediaType);
            w.WriteStartObject("verificationMaterial");
            w.WriteStartObject("publicKey");
            w.WriteString("hint", hint);
            w.WriteEndObject();
            w.WriteStartArray("tlogEntries");
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("dsseEnvelope");
            w.WriteString("payload", Convert.ToBase64String(statement));
            w.WriteString("payloadType", Dsse.InTotoPayloadType);
            w.WriteStartArray("signatures");
            w.WriteStartObject();
            w.WriteString("sig", Convert.ToBase64String(signature));
            w.WriteString("keyid", "");
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>
    /// Opens a bundle: v0.3 media type, a DSSE envelope with one signature that verifies with <paramref name="key"/>
    /// over the PAE, payload type in-toto. Returns the statement bytes, or null with the reason.
    /// </summary>
    public static (byte[]? Statement, string? Error) Open(ReadOnlySpan<byte> json, VerificationKey key)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("mediaType", out var mt) || mt.ValueKind != JsonValueKind.String || mt.GetString() != MediaType)
            {
                return (null, $"not a {MediaType} bundle");
            }
            if (!root.TryGetProperty("dsseEnvelope", out var env) || env.ValueKind != JsonValueKind.Object)
            {
                return (null, "the bundle holds no DSSE envelope");
            }
            var payloadType = env.TryGetProperty("payloadType", out var pt) && pt.ValueKind == JsonValueKind.String ? pt.GetString() : null;
            if (payloadType != Dsse.InTotoPayloadType)
            {
                return (null, $"DSSE payloadType {payloadType ?? "(none)"}");
            }
            var payload = Convert.FromBase64String(env.GetProperty("payload").GetString() ?? "");
            if (!env.TryGetProperty("signatures", out var sigs) || sigs.ValueKind != JsonValueKind.Array || sigs.GetArrayLength() != 1)
            {
                return (null, "the DSSE envelope does not hold exactly one signature");
            }
            var sig = Convert.FromBase64String(sigs[0].GetProperty("sig").GetString() ?? "");
            if (!key.Verify(Dsse.Pae(payloadType, payload), sig))
            {
                return (null, "wrong key: the bundle's signature does not verify with it");
            }
            return (payload, null);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            return (null, $"not a readable bundle: {e.Message}");
        }
    }

    /// <summary>
    /// cosign v3's signature statement (cmd/cosign/cli/sign/sign.go signDigestBundle): subject = the manifest digest
    /// (named with the repository, HOST/REPO), predicate type <see cref="CosignSignPredicateType"/>, empty predicate.
    /// Deterministic: a re-run finds it.
    /// </summary>
    public static byte[] CosignSignStatement(string identity, Digest digest)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            InToto.WriteStatementHead(w, [(identity, digest.Algorithm, digest.Encoded)], CosignSignPredicateType);
            w.WriteStartObject("predicate");
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>True when <paramref name="statement"/> is an in-toto Statement v1 of <paramref name="predicateType"/> naming <paramref name="digest"/> among its subjects.</summary>
    public static bool StatementNames(byte[] statement, Digest digest, string predicateType)
    {
        try
        {
            using var doc = JsonDocument.Parse(statement);
            var root = doc.RootElement;
            return root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("_type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == InToto.StatementType
                && root.TryGetProperty("predicateType", out var pt) && pt.ValueKind == JsonValueKind.String && pt.GetString() == predicateType
                && root.TryGetProperty("subject", out var subjects) && subjects.ValueKind == JsonValueKind.Array
                && subjects.EnumerateArray().Any(s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("digest", out var d) && d.ValueKind == JsonValueKind.Object
                    && d.TryGetProperty(digest.Algorithm, out var hex) && hex.ValueKind == JsonValueKind.String && hex.GetString() == digest.Encoded);
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
