using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using ModelCar.Oci;
using ModelCar.Registry;

namespace ModelCar.Signing;

/// <summary>What an attach did: the tag, the manifest now at it, whether a layer was added.</summary>
public sealed record AttachOutcome(string Tag, Digest Manifest, bool Added, int Layers);

/// <summary>
/// Cosign's tag-based attachments in one repository (cosign pkg/oci/remote, pkg/oci/mutate):
/// <c>sha256-HEX.sig</c> and <c>sha256-HEX.att</c> hold an OCI manifest (config
/// <c>application/vnd.oci.image.config.v1+json</c>, rootfs diff_ids = the layer digests) with one
/// layer per signature or attestation. A new one is appended to what is there (other keys'
/// signatures are kept); one that is already there (same payload, verified with the same key) adds
/// nothing. Blobs the registry has are not uploaded again; the tag is checked with a HEAD after the PUT.
/// </summary>
public sealed class CosignAttachments(RegistryRepository repository, ILogger logger)
{
    public const string ConfigMediaType = "application/vnd.oci.image.config.v1+json";
    public const string PredicateTypeAnnotation = "predicateType";

    /// <summary>Small JSON attachments only: what a layer or manifest here may be at most.</summary>
    public const int MaxAttachmentBytes = 4 << 20;

    public RegistryRepository Repository => repository;

    /// <summary>The signed identity: HOST/REPO, no tag (what <c>cosign sign</c> writes, what matchRepository compares).</summary>
    public string Identity => $"{repository.Client.Registry}/{repository.Name}";

    /// <summary>
    /// Cosign's tag for an attachment of <paramref name="subject"/>: <c>sha256-HEX.SUFFIX</c> (the referrers fallback tag
    /// <see cref="Referrers.FallbackTag"/> plus the suffix). The signer and the verifier both name tags only through this.
    /// </summary>
    public static string Tag(Digest subject, string suffix) => $"{Referrers.FallbackTag(subject)}.{suffix}";

    /// <summary><c>sha256-HEX.sig</c>: the cosign signatures of <paramref name="subject"/>.</summary>
    public static string SignatureTag(Digest subject) => Tag(subject, "sig");

    /// <summary><c>sha256-HEX.att</c>: the cosign attestations of <paramref name="subject"/>.</summary>
    public static string AttestationTag(Digest subject) => Tag(subject, "att");

    /// <summary>Pushes (or finds) the cosign signature of <paramref name="subject"/> by <paramref name="key"/>.</summary>
    public Task<AttachOutcome> SignAsync(SigningKey key, Digest subject, CancellationToken ct)
    {
        var payload = SimpleSigning.Create(Identity, subject);
        var payloadDigest = Digest.Sha256(payload);
        return AttachAsync(SignatureTag(subject), SimpleSigning.LayerMediaType, payload,
            () => new Dictionary<string, string> { [SimpleSigning.SignatureAnnotation] = Convert.ToBase64String(key.Sign(payload)) },
            (layer, _) => Task.FromResult(layer.MediaType == SimpleSigning.LayerMediaType && layer.Digest == payloadDigest
                && layer.Annotations?.GetValueOrDefault(SimpleSigning.SignatureAnnotation) is { } sig && VerifiesBase64(key.PublicKey, payload, sig)),
            ct);
    }

    /// <summary>Pushes (or finds) a DSSE attestation of <paramref name="subject"/>: <paramref name="statement"/> signed by <paramref name="key"/>.</summary>
    public Task<AttachOutcome> AttestAsync(SigningKey key, Digest subject, byte[] statement, string predicateType, CancellationToken ct)
    {
        var envelope = Dsse.Sign(key, Dsse.InTotoPayloadType, statement);
        return AttachAsync(AttestationTag(subject), Dsse.EnvelopeMediaType, envelope,
            () => new Dictionary<string, string> { [PredicateTypeAnnotation] = predicateType },
            async (layer, ct2) =>
            {
                if (layer.MediaType != Dsse.EnvelopeMediaType || layer.Annotations?.GetValueOrDefault(PredicateTypeAnnotation) != predicateType)
                {
                    return false;
                }
                var blob = await ReadSmallBlobAsync(repository, layer, ct2).ConfigureAwait(false);
                return Dsse.Open(blob, key.PublicKey) is { } opened && opened.Payload.AsSpan().SequenceEqual(statement);
            },
            ct);
    }

    private static bool VerifiesBase64(VerificationKey key, byte[] payload, string base64)
    {
        try
        {
            return key.Verify(payload, Convert.FromBase64String(base64));
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private async Task<AttachOutcome> AttachAsync(string tag, string layerMediaType, byte[] blob, Func<Dictionary<string, string>> annotations,
        Func<Descriptor, CancellationToken, Task<bool>> isSame, CancellationToken ct)
    {
        var existing = await ReadAttachmentManifestAsync(repository, tag, ct).ConfigureAwait(false);
        var layers = existing?.Manifest.Layers.ToList() ?? [];
        foreach (var layer in layers)
        {
            if (await isSame(layer, ct).ConfigureAwait(false))
            {
                logger.LogInformation("{Tag} in {Registry}/{Repository} already holds this one ({Layers} layer(s)): nothing to add", tag, repository.Client.Registry, repository.Name, layers.Count);
                return new AttachOutcome(tag, existing!.Value.Digest, false, layers.Count);
            }
        }
        var layerDescriptor = new Descriptor { MediaType = layerMediaType, Digest = Digest.Sha256(blob), Size = blob.Length, Annotations = annotations() };
        await BlobUploader.EnsureSmallBlobAsync(repository, layerDescriptor, blob, logger, ct).ConfigureAwait(false);
        layers.Add(layerDescriptor);
        var config = ConfigFor(layers);
        var configDescriptor = new Descriptor { MediaType = ConfigMediaType, Digest = Digest.Sha256(config), Size = config.Length };
        await BlobUploader.EnsureSmallBlobAsync(repository, configDescriptor, config, logger, ct).ConfigureAwait(false);
        var manifest = OciJson.Serialize(new ImageManifest { MediaType = MediaTypes.ImageManifest, Config = configDescriptor, Layers = layers }, OciJson.Manifest);
        var digest = await repository.PutManifestAsync(tag, MediaTypes.ImageManifest, manifest, ct).ConfigureAwait(false);
        var check = await repository.ManifestDigestAsync(tag, ct).ConfigureAwait(false);
        if (check is { } d && !d.Matches(digest))
        {
            throw new SigningException($"{tag} in {repository.Client.Registry}/{repository.Name}: after the PUT the tag names {d}, not the pushed {digest}", SigningFailure.PayloadMismatch);
        }
        if (check is null)
        {
            throw new SigningException($"{tag} in {repository.Client.Registry}/{repository.Name}: the registry accepted the manifest but does not have the tag", SigningFailure.Unsigned);
        }
        logger.LogInformation("pushed {Tag} to {Registry}/{Repository} ({Digest}, {Layers} layer(s))", tag, repository.Client.Registry, repository.Name, digest, layers.Count);
        return new AttachOutcome(tag, digest, true, layers.Count);
    }


    /// <summary>go-containerregistry's empty image config with one rootfs diff_id (and history entry) per layer, as cosign writes it.</summary>
    private static byte[] ConfigFor(IReadOnlyList<Descriptor> layers)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("architecture", "");
            w.WriteString("created", "0001-01-01T00:00:00Z");
            w.WriteStartArray("history");
            foreach (var _ in layers)
            {
                w.WriteStartObject();
                w.WriteString("created", "0001-01-01T00:00:00Z");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("os", "");
            w.WriteStartObject("rootfs");
            w.WriteString("type", "layers");
            w.WriteStartArray("diff_ids");
            foreach (var l in layers)
            {
                w.WriteStringValue(l.Digest.ToString());
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("config");
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>
    /// The manifest at an attachment tag, or null when the tag does not exist. Only OCI image manifests are accepted (as containers/image does).
    /// <paramref name="readOnly"/>: a verifier's read, authorized with pull scope only (a reader may have no push rights).
    /// </summary>
    public static async Task<(Digest Digest, ImageManifest Manifest)?> ReadAttachmentManifestAsync(RegistryRepository repository, string tag, CancellationToken ct, bool readOnly = false)
    {
        if (await repository.ManifestDigestAsync(tag, ct, readOnly ? repository.PullScope : null).ConfigureAwait(false) is null)
        {
            return null;
        }
        var (descriptor, content) = await repository.GetManifestAsync(tag, ct).ConfigureAwait(false);
        if (descriptor.MediaType != MediaTypes.ImageManifest)
        {
            throw new SigningException($"{tag} in {repository.Client.Registry}/{repository.Name} is a {descriptor.MediaType}, not an OCI image manifest", SigningFailure.PayloadMismatch);
        }
        return (descriptor.Digest, OciJson.Deserialize(content, OciJson.Manifest, $"{tag} in {repository.Client.Registry}/{repository.Name}"));
    }

    /// <summary>GET a small blob (at most <see cref="MaxAttachmentBytes"/>) and check its digest.</summary>
    public static async Task<byte[]> ReadSmallBlobAsync(RegistryRepository repository, Descriptor layer, CancellationToken ct)
    {
        if (layer.Size is < 0 or > MaxAttachmentBytes)
        {
            throw new SigningException($"attachment layer {layer.Digest} claims {layer.Size} bytes (at most {MaxAttachmentBytes})", SigningFailure.PayloadMismatch);
        }
        await using var stream = await repository.OpenBlobAsync(layer.Digest, ct).ConfigureAwait(false);
        var buffer = new byte[layer.Size + 1];
        int total = 0, n;
        while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false)) > 0)
        {
            total += n;
        }
        var blob = buffer.AsSpan(0, total).ToArray();
        if (total != layer.Size || !Digest.Sha256(blob).Matches(layer.Digest))
        {
            throw new SigningException($"attachment layer {layer.Digest}: the registry sent {(total > layer.Size ? "more than" : total.ToString(System.Globalization.CultureInfo.InvariantCulture))} bytes, not the {layer.Size} with that digest", SigningFailure.PayloadMismatch);
        }
        return blob;
    }

    internal static string Utf8(byte[] b) => Encoding.UTF8.GetString(b);
}
