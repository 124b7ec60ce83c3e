using ModelCar.Oci;

namespace ModelCar.Signing.Verification;

/// <summary>
/// A release record as its store holds it, as text (the Model Registry: the artifact's uri and string properties).
/// <see cref="Parse"/> turns it into the <see cref="RecordedRelease"/> an attestation is checked against: every digest
/// must parse, and the image digest named twice (in the uri, <c>…@sha256:…</c>, and as a property) must agree.
/// </summary>
/// <param name="Where">Names the record in messages.</param>
/// <param name="UriDigest">The digest part of <paramref name="Uri"/>, or null when it names none.</param>
/// <param name="ImageDigestName">The record's name for <paramref name="ImageDigest"/> (for messages).</param>
/// <param name="ModelFilesDigestName">The record's name for <paramref name="ModelFilesDigest"/> (for messages).</param>
public sealed record ReleaseRecordText(string Where, string Uri, string? UriDigest, string ImageDigestName, string? ImageDigest, string? Commit,
    string ModelFilesDigestName, string? ModelFilesDigest)
{
    /// <summary>The record, or a <see cref="SigningException"/> (<see cref="SigningFailure.ReleaseRecord"/>) naming what is wrong with it.</summary>
    public RecordedRelease Parse()
    {
        var uriDigest = ParseDigest(UriDigest, $"{Where}: uri '{Uri}'");
        var propertyDigest = ParseDigest(ImageDigest, $"{Where}: {ImageDigestName}");
        if (uriDigest is { } u && propertyDigest is { } p && !u.Matches(p))
        {
            throw new SigningException($"digest mismatch: {Where} records uri {Uri} but {ImageDigestName} {p}: the record contradicts itself", SigningFailure.ReleaseRecord);
        }
        return new RecordedRelease(Where, uriDigest ?? propertyDigest, Commit, ParseDigest(ModelFilesDigest, $"{Where}: {ModelFilesDigestName}"));
    }

    private static Digest? ParseDigest(string? text, string what) => text is null ? null
        : Digest.TryParse(text, out var d) ? d
        : throw new SigningException($"{what} is not a digest ('{(text.Length > 80 ? text[..80] + "…" : text)}')", SigningFailure.ReleaseRecord);
}
