using Microsoft.Extensions.Logging;
using ModelCar.Oci;
using ModelCar.Registry;

namespace ModelCar.Signing;

/// <summary>What a bundle attach did: the referrer manifest, whether it was added, and where the registry lists it.</summary>
public sealed record BundleOutcome(Digest Subject, string PredicateType, Digest Manifest, bool Added, ReferrersPath? Path);

/// <summary>
/// Sigstore bundles as OCI 1.1 referrers, the way cosign v3 stores them (pkg/oci/remote/write.go
/// WriteReferrer / WriteAttestationNewBundleFormat): an OCI image manifest, <c>artifactType</c> =
/// <see cref="SigstoreBundle.MediaType"/>, config = the empty descriptor (<c>application/vnd.oci.empty.v1+json</c>,
/// <c>{}</c>), one layer = the bundle (same media type), <c>subject</c> = the signed manifest, annotations
/// <c>dev.sigstore.bundle.content: dsse-envelope</c>, <c>dev.sigstore.bundle.predicateType</c> and
/// <c>org.opencontainers.image.created</c>; pushed by digest and listed through <see cref="Referrers"/>.
/// A bundle of the same statement that verifies with the same key already listed for the subject adds nothing.
/// </summary>
public sealed class BundleReferrers(RegistryRepository repository, ILogger logger)
{
    public const string EmptyMediaType = "application/vnd.oci.empty.v1+json";
    private static readonly byte[] EmptyConfig = "{}"u8.ToArray();

    /// <summary>Referrer manifests of one subject read at most (each a GET and a blob GET).</summary>
    public const int MaxCandidates = 64;

    private string Where => $"{repository.Client.Registry}/{repository.Name}";

    /// <summary>Pushes <paramref name="bundle"/> (over <paramref name="statement"/>, by <paramref name="key"/>) as a referrer of <paramref name="subject"/>, unless one like it is there.</summary>
    public async Task<BundleOutcome> AttachAsync(Descriptor subject, string predicateType, byte[] statement, Func<byte[]> bundle, VerificationKey key, CancellationToken ct)
    {
        var referrers = new Referrers(repository, logger);
        foreach (var (existing, digest) in await FindAsync(referrers, subject.Digest, predicateType, key, ct).ConfigureAwait(false))
        {
            if (existing.AsSpan().SequenceEqual(statement))
            {
                logger.LogInformation("{Where}: a {Predicate} bundle of {Subject} by this key is there already ({Digest}): nothing to add", Where, predicateType, subject.Digest, digest);
                return new BundleOutcome(subject.Digest, predicateType, digest, false, null);
            }
        }
        var bytes = bundle();
        var layer = new Descriptor { MediaType = SigstoreBundle.MediaType, Digest = Digest.Sha256(bytes), Size = bytes.Length };
        var config = new Descriptor { MediaType = EmptyMediaType, Digest = Digest.Sha256(EmptyConfig), Size = EmptyConfig.Length, ArtifactType = SigstoreBundle.MediaType };
        await BlobUploader.EnsureSmallBlobAsync(repository, config, EmptyConfig, logger, ct).ConfigureAwait(false);
        await BlobUploader.EnsureSmallBlobAsync(repository, layer, bytes, logger, ct).ConfigureAwait(false);
        var referrer = new ImageManifest
        {
            MediaType = MediaTypes.ImageManifest,
            ArtifactType = SigstoreBundle.MediaType,
            Config = config,
            Layers = [layer],
            Subject = new Descriptor { MediaType = subject.MediaType, Digest = subject.Digest, Size = subject.Size },
            Annotations = new SortedDictionary<string, string>(StringComparer.Ordinal)
            {
                [SigstoreBundle.ContentAnnotation] = "dsse-envelope",
                [SigstoreBundle.PredicateTypeAnnotation] = predicateType,
                [Annotations.Created] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture),
            },
        };
        var content = OciJson.Serialize(referrer, OciJson.Manifest);
        var pushed = await referrers.PushAsync(subject.Digest, content, ct).ConfigureAwait(false);
        logger.LogInformation("pushed a {Predicate} bundle of {Subject} to {Where} ({Digest}, {Path})", predicateType, subject.Digest, Where, pushed.Manifest,
            pushed.Path == ReferrersPath.Api ? "referrers API" : $"referrers tag {Referrers.FallbackTag(subject.Digest)}");
        return new BundleOutcome(subject.Digest, predicateType, pushed.Manifest, true, pushed.Path);
    }

    /// <summary>
    /// The statements of the bundles of <paramref name="predicateType"/> that verify with <paramref name="key"/> and are
    /// referrers of <paramref name="subject"/> (each manifest fetched by digest: its <c>subject</c> must be that digest,
    /// whatever the list said), newest listed last.
    /// </summary>
    public async Task<IReadOnlyList<(byte[] Statement, Digest Manifest)>> FindAsync(Referrers referrers, Digest subject, string predicateType, VerificationKey key, CancellationToken ct, List<string>? rejected = null)
    {
        var listed = await referrers.ListAsync(subject, SigstoreBundle.MediaType, ct).ConfigureAwait(false);
        var found = new List<(byte[], Digest)>();
        int read = 0;
        foreach (var entry in listed)
        {
            if (entry.Descriptor.Annotations?.GetValueOrDefault(SigstoreBundle.PredicateTypeAnnotation) is { } p && p != predicateType)
            {
                continue; // the list copies the manifest's annotations: another kind of bundle
            }
            if (++read > MaxCandidates)
            {
                logger.LogWarning("{Where}: more than {Max} bundle referrers of {Subject}: the rest are not read", Where, MaxCandidates, subject);
                break;
            }
            var (_, raw) = await repository.GetManifestAsync(entry.Descriptor.Digest.ToString(), ct).ConfigureAwait(false); // checked against the digest
            ImageManifest manifest;
            try
            {
                manifest = OciJson.Deserialize(raw, OciJson.Manifest, $"{Where}@{entry.Descriptor.Digest}");
            }
            catch (InvalidDataException e)
            {
                rejected?.Add($"{entry.Descriptor.Digest}: {e.Message}");
                continue;
            }
            if (manifest.Subject is not { } s || !s.Digest.Matches(subject))
            {
                logger.LogWarning("{Where}: the referrers of {Subject} list {Digest}, whose subject is {Other}: ignored", Where, subject, entry.Descriptor.Digest, manifest.Subject?.Digest.ToString() ?? "(none)");
                rejected?.Add($"{entry.Descriptor.Digest} has subject {manifest.Subject?.Digest.ToString() ?? "(none)"}");
                continue;
            }
            var layer = manifest.Layers.FirstOrDefault(l => l.MediaType == SigstoreBundle.MediaType);
            if (manifest.Layers.Count != 1 || layer is null)
            {
                rejected?.Add($"{entry.Descriptor.Digest} does not hold one bundle layer");
                continue;
            }
            var bundle = await CosignAttachments.ReadSmallBlobAsync(repository, layer, ct).ConfigureAwait(false);
            var (statement, error) = SigstoreBundle.Open(bundle, key);
            if (statement is null)
            {
                rejected?.Add($"{entry.Descriptor.Digest}: {error}");
                continue;
            }
            if (!SigstoreBundle.StatementNames(statement, subject, predicateType) && predicateType != ModelSignature.PredicateType)
            {
                rejected?.Add($"{entry.Descriptor.Digest}: the statement does not name {subject} with predicate {predicateType}");
                continue;
            }
            found.Add((statement, entry.Descriptor.Digest));
        }
        return found;
    }

}
