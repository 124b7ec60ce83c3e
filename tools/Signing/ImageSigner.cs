using Microsoft.Extensions.Logging;
using ModelCar.Oci;
using ModelCar.Registry;

namespace ModelCar.Signing;

/// <summary>What was signed in one repository.</summary>
public sealed record SignedImage(string Repository, Digest Root, IReadOnlyList<AttachOutcome> Signatures, AttachOutcome? Attestation);

/// <summary>
/// Signs an image that is complete in a registry: its root (manifest or index) is read back first
/// (by digest, so what is signed is what the registry serves), then each platform manifest of an
/// index is confirmed with a HEAD and signed (CRI-O checks the instance it pulls), then the index
/// itself (what cosign users verify); then, with a statement, the attestation of the root.
/// </summary>
public sealed class ImageSigner(SigningKey key, ILogger logger)
{
    /// <summary>Signs <paramref name="root"/> in <paramref name="repository"/>; <paramref name="statement"/> (given the platform digests) is attested when not null.</summary>
    public async Task<SignedImage> SignAsync(RegistryRepository repository, Digest root, Func<string, Digest, IReadOnlyList<(Digest Digest, ImageManifest Manifest)>, byte[]>? statement, string? predicateType, CancellationToken ct)
    {
        var (descriptor, content) = await repository.GetManifestAsync(root.ToString(), ct).ConfigureAwait(false);
        var manifests = new List<(Digest Digest, ImageManifest Manifest)>();
        var platforms = new List<Digest>();
        if (MediaTypes.IsIndex(descriptor.MediaType))
        {
            var index = OciJson.Deserialize(content, OciJson.Index, $"{repository.Client.Registry}/{repository.Name}@{root}");
            foreach (var m in index.Manifests.Where(m => MediaTypes.IsManifest(m.MediaType)))
            {
                // by digest: GetManifestAsync checks the bytes against it (the registry has exactly this platform manifest)
                var (_, child) = await repository.GetManifestAsync(m.Digest.ToString(), ct).ConfigureAwait(false);
                manifests.Add((m.Digest, OciJson.Deserialize(child, OciJson.Manifest, $"{repository.Client.Registry}/{repository.Name}@{m.Digest}")));
                platforms.Add(m.Digest);
            }
        }
        else
        {
            manifests.Add((root, OciJson.Deserialize(content, OciJson.Manifest, $"{repository.Client.Registry}/{repository.Name}@{root}")));
        }
        var attachments = new CosignAttachments(repository, logger);
        var signatures = new List<AttachOutcome>();
        foreach (var d in platforms.Append(root))
        {
            signatures.Add(await attachments.SignAsync(key, d, ct).ConfigureAwait(false));
        }
        AttachOutcome? attestation = null;
        if (statement is not null)
        {
            attestation = await attachments.AttestAsync(key, root, statement($"{repository.Client.Registry}/{repository.Name}", root, manifests), predicateType ?? InToto.SlsaProvenanceV1, ct).ConfigureAwait(false);
        }
        return new SignedImage(attachments.Identity, root, signatures, attestation);
    }
}
