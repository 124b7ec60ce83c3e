using System.Text;
using System.Text.Json;
using ModelCar.Oci;

namespace ModelCar.Signing;

/// <summary>The cosign simple-signing payload (sigstore/sigstore pkg/signature/payload/payload.go).</summary>
public static class SimpleSigning
{
    public const string SignatureType = "cosign container image signature";
    public const string LayerMediaType = "application/vnd.dev.cosign.simplesigning.v1+json";
    public const string SignatureAnnotation = "dev.cosignproject.cosign/signature";

    /// <summary>
    /// <c>{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},"type":…},"optional":null}</c>,
    /// in cosign's key order, no annotations (so the same digest and identity always give the same
    /// bytes: a re-run re-uses the blob). R is HOST/REPO without tag, as <c>cosign sign</c> writes it.
    /// </summary>
    public static byte[] Create(string dockerReference, Digest digest)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartObject("critical");
            w.WriteStartObject("identity");
            w.WriteString("docker-reference", dockerReference);
            w.WriteEndObject();
            w.WriteStartObject("image");
            w.WriteString("docker-manifest-digest", digest.ToString());
            w.WriteEndObject();
            w.WriteString("type", SignatureType);
            w.WriteEndObject();
            w.WriteNull("optional");
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }
}

/// <summary>DSSE (secure-systems-lab/dsse protocol.md): the pre-authentication encoding and the envelope.</summary>
public static class Dsse
{
    public const string InTotoPayloadType = "application/vnd.in-toto+json";
    public const string EnvelopeMediaType = "application/vnd.dsse.envelope.v1+json";

    /// <summary><c>"DSSEv1" SP len(type) SP type SP len(body) SP body</c> (lengths in bytes, decimal).</summary>
    public static byte[] Pae(string payloadType, ReadOnlySpan<byte> body)
    {
        var type = Encoding.UTF8.GetBytes(payloadType);
        var head = Encoding.UTF8.GetBytes($"DSSEv1 {type.Length} ");
        var mid = Encoding.UTF8.GetBytes($" {body.Length} ");
        var pae = new byte[head.Length + type.Length + mid.Length + body.Length];
        head.CopyTo(pae, 0);
        type.CopyTo(pae, head.Length);
        mid.CopyTo(pae, head.Length + type.Length);
        body.CopyTo(pae.AsSpan(head.Length + type.Length + mid.Length));
        return pae;
    }

    /// <summary>Signs <paramref name="body"/> and returns the envelope JSON (keyid empty, as cosign's key-based attest writes it).</summary>
    public static byte[] Sign(SigningKey key, string payloadType, byte[] body)
    {
        var envelope = new DsseEnvelope
        {
            PayloadType = payloadType,
            Payload = Convert.ToBase64String(body),
            Signatures = [new DsseSignature { Sig = Convert.ToBase64String(key.Sign(Pae(payloadType, body))) }],
        };
        return JsonSerializer.SerializeToUtf8Bytes(envelope, SigningJsonContext.Default.DsseEnvelope);
    }

    /// <summary>Parses an envelope and returns its payload if one of its signatures verifies with <paramref name="key"/>; null otherwise.</summary>
    public static (string PayloadType, byte[] Payload)? Open(ReadOnlySpan<byte> json, VerificationKey key)
    {
        DsseEnvelope? envelope;
        try
        {
            envelope = JsonSerializer.Deserialize(json, SigningJsonContext.Default.DsseEnvelope);
        }
        catch (JsonException)
        {
            return null;
        }
        if (envelope is null)
        {
            return null;
        }
        byte[] body;
        try
        {
            body = Convert.FromBase64String(envelope.Payload);
        }
        catch (FormatException)
        {
            return null;
        }
        var pae = Pae(envelope.PayloadType, body);
        foreach (var s in envelope.Signatures ?? [])
        {
            try
            {
                if (key.Verify(pae, Convert.FromBase64String(s.Sig)))
                {
                    return (envelope.PayloadType, body);
                }
            }
            catch (FormatException)
            {
            }
        }
        return null;
    }
}
