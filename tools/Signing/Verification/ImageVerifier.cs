using System.Text.Json;
using ModelCar.Oci;
using ModelCar.Registry;

namespace ModelCar.Signing.Verification;

/// <summary>One checked digest: what was checked and the verified statement (when attestations were checked).</summary>
public sealed record VerifiedImage(Digest Digest, IReadOnlyList<Digest> Checked, JsonDocument? Statement);

/// <summary>
/// Checks an image in a registry the way a node would (containers/image docker/docker_image_src.go,
/// signature/policy_eval_sigstore.go, copy/): the <c>sha256-HEX.sig</c> of each platform manifest of an
/// index (CRI-O checks the instance it pulls) and of the index itself (what cosign users verify), each
/// needing one <c>application/vnd.dev.cosign.simplesigning.v1+json</c> layer whose signature verifies with
/// the key, whose payload passes <see cref="SigstorePayloadRules"/>, names that digest, and whose identity
/// matches the repository (matchRepository). Written from those rules, not from our signing code.
/// Optionally the <c>.att</c> of the digest: a DSSE envelope that verifies with the key and holds an
/// in-toto Statement v1 whose subject includes the digest. Then the Sigstore bundle referrer of the digest
/// (cosign v3's format, found through the referrers API or the referrers tag schema): a bundle whose DSSE
/// signature verifies with the key over a statement of predicate <c>https://sigstore.dev/cosign/sign/v1</c>
/// naming the digest, in a referrer manifest whose <c>subject</c> is the digest.
/// </summary>
public sealed class ImageVerifier(RegistryRepository repository, VerificationKey key)
{
    /// <summary>Also require the signature's Sigstore bundle referrer (default on).</summary>
    public bool RequireBundle { get; init; } = true;

    public string RepositoryName => $"{repository.Client.Registry}/{repository.Name}";

    public async Task<VerifiedImage> VerifyAsync(Digest digest, bool attestation, string? predicateType, CancellationToken ct)
    {
        var (descriptor, content) = await repository.GetManifestAsync(digest.ToString(), ct).ConfigureAwait(false);
        var targets = new List<Digest>();
        if (MediaTypes.IsIndex(descriptor.MediaType))
        {
            var index = OciJson.Deserialize(content, OciJson.Index, $"{RepositoryName}@{digest}");
            targets.AddRange(index.Manifests.Where(m => MediaTypes.IsManifest(m.MediaType)).Select(m => m.Digest));
        }
        targets.Add(digest);
        foreach (var target in targets)
        {
            await CheckSignatureAsync(target, ct).ConfigureAwait(false);
        }
        if (RequireBundle)
        {
            await CheckBundleAsync(digest, ct).ConfigureAwait(false);
        }
        JsonDocument? statement = null;
        if (attestation)
        {
            statement = await CheckAttestationAsync(digest, predicateType, ct).ConfigureAwait(false);
        }
        return new VerifiedImage(digest, targets, statement);
    }

    private async Task CheckSignatureAsync(Digest target, CancellationToken ct)
    {
        var tag = CosignAttachments.SignatureTag(target);
        var manifest = await CosignAttachments.ReadAttachmentManifestAsync(repository, tag, ct, readOnly: true).ConfigureAwait(false);
        var layers = manifest?.Manifest.Layers.Where(l => l.MediaType == SimpleSigning.LayerMediaType).ToList() ?? [];
        if (layers.Count == 0)
        {
            throw new SigningException($"{RepositoryName}@{target} is unsigned (no {tag} with a simple-signing layer)", SigningFailure.Unsigned);
        }
        string? mismatch = null;
        foreach (var layer in layers)
        {
            if (layer.Annotations?.GetValueOrDefault(SimpleSigning.SignatureAnnotation) is not { } b64)
            {
                continue;
            }
            byte[] signature;
            try
            {
                signature = Convert.FromBase64String(b64);
            }
            catch (FormatException)
            {
                continue;
            }
            var payload = await CosignAttachments.ReadSmallBlobAsync(repository, layer, ct).ConfigureAwait(false);
            if (!key.Verify(payload, signature))
            {
                continue;
            }
            var (parsed, error) = SigstorePayloadRules.Parse(payload);
            if (parsed is null)
            {
                mismatch ??= $"the signature by this key in {tag} has an unacceptable payload: {error}";
            }
            else if (!parsed.ManifestDigest.Matches(target))
            {
                mismatch ??= $"digest mismatch: the signature by this key in {tag} signs {parsed.ManifestDigest}";
            }
            else if (!SigstorePayloadRules.MatchRepository(parsed.DockerReference, RepositoryName))
            {
                mismatch ??= $"the signature by this key in {tag} is for {parsed.DockerReference}, not {RepositoryName} (matchRepository)";
            }
            else
            {
                return;
            }
        }
        throw mismatch is not null
            ? new SigningException($"{RepositoryName}@{target}: {mismatch}", SigningFailure.PayloadMismatch)
            : new SigningException($"{RepositoryName}@{target}: wrong key: none of the {layers.Count} signature(s) in {tag} verifies with it", SigningFailure.WrongKey);
    }

    private async Task CheckBundleAsync(Digest digest, CancellationToken ct)
    {
        var rejected = new List<string>();
        var found = await new BundleReferrers(repository, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)
            .FindAsync(new Referrers(repository, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), digest, SigstoreBundle.CosignSignPredicateType, key, ct, rejected).ConfigureAwait(false);
        if (found.Count == 0)
        {
            throw new SigningException(rejected.Count == 0
                ? $"{RepositoryName}@{digest}: no Sigstore bundle referrer of the signature (referrers API or tag {Referrers.FallbackTag(digest)})"
                : $"{RepositoryName}@{digest}: no Sigstore bundle referrer verifies: {rejected[0]}{(rejected.Count > 1 ? $" (and {rejected.Count - 1} more)" : "")}",
                rejected.Any(r => r.Contains("wrong key", StringComparison.Ordinal)) ? SigningFailure.WrongKey : SigningFailure.Unsigned);
        }
    }

    private async Task<JsonDocument> CheckAttestationAsync(Digest digest, string? predicateType, CancellationToken ct)
    {
        var tag = CosignAttachments.AttestationTag(digest);
        var manifest = await CosignAttachments.ReadAttachmentManifestAsync(repository, tag, ct, readOnly: true).ConfigureAwait(false);
        var layers = manifest?.Manifest.Layers.Where(l => l.MediaType == Dsse.EnvelopeMediaType).ToList() ?? [];
        if (layers.Count == 0)
        {
            throw new SigningException($"{RepositoryName}@{digest}: attestation missing (no {tag} with a DSSE layer)", SigningFailure.AttestationMissing);
        }
        string? why = null;
        for (int i = layers.Count - 1; i >= 0; i--) // the newest first
        {
            var blob = await CosignAttachments.ReadSmallBlobAsync(repository, layers[i], ct).ConfigureAwait(false);
            if (Dsse.Open(blob, key) is not { } opened)
            {
                why ??= "no attestation verifies with this key";
                continue;
            }
            if (opened.PayloadType != Dsse.InTotoPayloadType)
            {
                why ??= $"payloadType {opened.PayloadType}";
                continue;
            }
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(opened.Payload);
            }
            catch (JsonException)
            {
                why ??= "the attested statement is not JSON";
                continue;
            }
            var root = doc.RootElement;
            bool ok = root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("_type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == InToto.StatementType
                && root.TryGetProperty("predicateType", out var pt) && pt.ValueKind == JsonValueKind.String && (predicateType is null || pt.GetString() == predicateType)
                && root.TryGetProperty("subject", out var subjects) && subjects.ValueKind == JsonValueKind.Array
                && subjects.EnumerateArray().Any(s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("digest", out var d) && d.ValueKind == JsonValueKind.Object
                    && d.TryGetProperty(digest.Algorithm, out var hex) && hex.ValueKind == JsonValueKind.String && hex.GetString() == digest.Encoded);
            if (ok)
            {
                return doc;
            }
            doc.Dispose();
            why ??= $"the statement does not name {digest} as its subject, or is not an in-toto Statement v1{(predicateType is null ? "" : " with predicate " + predicateType)}";
        }
        throw new SigningException($"{RepositoryName}@{digest}: attestation missing: {why}", SigningFailure.AttestationMissing);
    }
}
