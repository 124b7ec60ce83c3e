using Microsoft.Extensions.Logging;
using ModelCar.Oci;
using ModelCar.Registry;

namespace ModelCar.Signing;

/// <summary>What was signed in one repository.</summary>
public sealed record SignedImage(string Repository, Digest Root, IReadOnlyList<AttachOutcome> Signatures, AttachOutcome? Attestation)
{
    /// <summary>The Sigstore bundle referrers (a signature bundle per signed digest, then the attestations' bundles).</summary>
    public IReadOnlyList<BundleOutcome> Bundles { get; init; } = [];
}

/// <summary>A statement already signed into a bundle (e.g. the model's OpenSSF signature, the same bytes as model.sig), pushed as a referrer of the root.</summary>
public sealed record PreparedBundle(string PredicateType, byte[] Statement, byte[] Bundle);

/// <summary>
/// Signs an image that is complete in a registry: its root (manifest or index) is read back first
/// (by digest, so what is signed is what the registry serves), then each platform manifest of an
/// index is confirmed with a HEAD and signed (CRI-O checks the instance it pulls), then the index
/// itself (what cosign users verify); then, with a statement, the attestation of the root. Each
/// signature and attestation also goes up as a Sigstore bundle referrer of its digest (cosign v3's
/// format: <see cref="BundleReferrers"/>), and <c>extra</c> bundles (the model signature) as referrers of the root.
/// </summary>
public sealed class ImageSigner(SigningKey key, ILogger logger)
{
    /// <summary>Signs <paramref name="root"/> in <paramref name="repository"/>; <paramref name="statement"/> (given the platform digests) is attested when not null.</summary>
    public async Task<SignedImage> SignAsync(RegistryRepository repository, Digest root, Func<string, Digest, IReadOnlyList<(Digest Digest, ImageManifest Manifest)>, byte[]>? statement, string? predicateType, CancellationToken ct,
        IReadOnlyList<PreparedBundle>? extra = null)
    {
        var (descriptor, content) = await repository.GetManifestAsync(root.ToString(), ct).ConfigureAwait(false);
        var manifests = new List<(Digest Digest, ImageManifest Manifest)>();
        var platforms = new List<Descriptor>();
        if (MediaTypes.IsIndex(descriptor.MediaType))
        {
            var index = OciJson.Deserialize(content, OciJson.Index, $"{repository.Client.Registry}/{repository.Name}@{root}");
            foreach (var m in index.Manifests.Where(m => MediaTypes.IsManifest(m.MediaType)))
            {
                // by digest: GetManifestAsync checks the bytes against it (the registry has exactly this platform manifest)
                var (_, child) = await repository.GetManifestAsync(m.Digest.ToString(), ct).ConfigureAwait(false);
                manifests.Add((m.Digest, OciJson.Deserialize(child, OciJson.Manifest, $"{repository.Client.Registry}/{repository.Name}@{m.Digest}")));
                platforms.Add(m);
            }
        }
        else
        {
            manifests.Add((root, OciJson.Deserialize(content, OciJson.Manifest, $"{repository.Client.Registry}/{repository.Name}@{root}")));
        }
        var attachments = new CosignAttachments(repository, logger);
        var bundles = new BundleReferrers(repository, logger);
        var signatures = new List<AttachOutcome>();
        var bundled = new List<BundleOutcome>();
        var cosignHint = SigstoreBundle.CosignHint(key.PublicKey);
        foreach (var d in platforms.Append(descriptor))
        {
            signatures.Add(await attachments.SignAsync(key, d.Digest, ct).ConfigureAwait(false));
            var signed = SigstoreBundle.CosignSignStatement(attachments.Identity, d.Digest);
            bundled.Add(await bundles.AttachAsync(d, SigstoreBundle.CosignSignPredicateType, signed, () => SigstoreBundle.SignStatement(key, signed, cosignHint), key.PublicKey, ct).ConfigureAwait(false));
        }
        AttachOutcome? attestation = null;
        if (statement is not null)
        {
            var attested = statement(attachments.Identity, root, manifests);
            var type = predicateType ?? InToto.SlsaProvenanceV1;
            attestation = await attachments.AttestAsync(key, root, attested, type, ct).ConfigureAwait(false);
            bundled.Add(await bundles.AttachAsync(descriptor, type, attested, () => SigstoreBundle.SignStatement(key, attested, cosignHint), key.PublicKey, ct).ConfigureAwait(false));
        }
        foreach (var b in extra ?? [])
        {
            bundled.Add(await bundles.AttachAsync(descriptor, b.PredicateType, b.Statement, () => b.Bundle, key.PublicKey, ct).ConfigureAwait(false));
        }
        return new SignedImage(attachments.Identity, root, signatures, attestation) { Bundles = bundled };
    }
}
