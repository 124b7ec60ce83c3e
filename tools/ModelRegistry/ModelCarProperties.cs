namespace ModelCar.ModelRegistry;

/// <summary>
/// The artifact custom properties a ModelCar registration records (string values) and the deploy side reads
/// back. The pipelines before the typed properties wrote some with underscores (hf_commit, image_digest):
/// those are read too.
/// </summary>
public static class ModelCarProperties
{
    public const string HfRepo = "hf-repo";
    public const string HfCommit = "hf-commit";
    public const string ImageDigest = "image-digest";
    public const string ImageSize = "image-size";
    public const string Platforms = "platforms";

    /// <summary>sha256 of the model's file listing (the sha256sum lines sorted by path): what the attestation's files must hash to.</summary>
    public const string ModelFilesDigest = "model-files-digest";

    /// <summary>The manifests at the cosign signature tags (sha256-HEX.sig) the build pushed, comma-separated.</summary>
    public const string SignatureDigests = "signature-digests";

    /// <summary>The manifests at the cosign attestation tags (sha256-HEX.att) the build pushed, comma-separated.</summary>
    public const string AttestationDigests = "attestation-digests";

    /// <summary>
    /// The string value of <paramref name="key"/> (or its underscore spelling) on the artifact; null when neither is
    /// there. Both there with different values: the record contradicts itself, which fails.
    /// </summary>
    public static string? Get(ModelArtifact artifact, string key)
    {
        var properties = artifact.CustomProperties ?? [];
        var typed = properties.GetValueOrDefault(key)?.ToString();
        var legacyKey = key.Replace('-', '_');
        var legacy = legacyKey == key ? null : properties.GetValueOrDefault(legacyKey)?.ToString();
        if (typed is not null && legacy is not null && typed != legacy)
        {
            throw new ModelRegistryException($"model artifact {artifact.Id} records both {key} '{typed}' and {legacyKey} '{legacy}': the record contradicts itself");
        }
        return string.IsNullOrWhiteSpace(typed ?? legacy) ? null : (typed ?? legacy)!.Trim();
    }

    /// <summary>The <c>@sha256:…</c> of an <c>oci://HOST/REPO@sha256:…</c> uri, or null.</summary>
    public static string? UriDigest(string? uri) =>
        uri is not null && uri.LastIndexOf('@') is int at and > 0 ? uri[(at + 1)..] : null;
}
