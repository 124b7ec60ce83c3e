using System.Text.Json;
using ModelCar.Oci;

namespace ModelCar.Signing.Verification;

/// <summary>
/// What a release record (the Model Registry's version of a model) says the image is: the image digest,
/// the source revision (the Hub commit) and the digest of the model's file listing
/// (<see cref="ModelFileListing"/>). <paramref name="Where"/> names the record in messages.
/// </summary>
public sealed record RecordedRelease(string Where, Digest? ImageDigest, string? Commit, Digest? ModelFilesDigest);

/// <summary>What the verified attestation says about the model (for results and logs).</summary>
public sealed record AttestedRelease(string? Commit, IReadOnlyList<(string Path, string Sha256Hex)> Files, Digest FilesDigest);

/// <summary>
/// Joins a verified image with its release record: the verified digest is the recorded one, the attested
/// revision is the recorded commit, and the attested model files (the SLSA provenance's
/// resolvedDependencies that carry a <c>name</c>: the path in the model) hash to the recorded listing
/// digest. Each failure is one <see cref="SigningException"/> line saying which of the three differs.
/// </summary>
public static class ReleaseCheck
{
    /// <summary>Checks <paramref name="statement"/> (already verified for <paramref name="digest"/>) against <paramref name="recorded"/>.</summary>
    public static AttestedRelease Check(string image, Digest digest, JsonElement statement, RecordedRelease recorded)
    {
        if (recorded.ImageDigest is not { } recordedDigest)
        {
            throw new SigningException($"{recorded.Where} records no image digest (its uri names no @sha256:…): nothing to check {image}@{digest} against", SigningFailure.AttestationMismatch);
        }
        if (!recordedDigest.Matches(digest))
        {
            throw new SigningException($"digest mismatch: {recorded.Where} records {recordedDigest}, {image} is {digest}", SigningFailure.AttestationMismatch);
        }
        var commit = AttestedRevision(statement);
        if (!string.Equals(commit ?? "", recorded.Commit ?? "", StringComparison.Ordinal))
        {
            throw new SigningException($"commit differs: the attestation of {image}@{digest} says {commit ?? "(no revision)"}, {recorded.Where} records {recorded.Commit ?? "(no commit)"}", SigningFailure.AttestationMismatch);
        }
        var files = AttestedModelFiles(statement);
        if (files.Count == 0)
        {
            throw new SigningException($"attestation missing: the attestation of {image}@{digest} lists no model files", SigningFailure.AttestationMissing);
        }
        var listing = ModelFileListing.Of(files);
        if (recorded.ModelFilesDigest is not { } recordedFiles)
        {
            throw new SigningException($"file digest differs: {recorded.Where} records no model file digests (model-files-digest) to compare the {files.Count} attested files with", SigningFailure.AttestationMismatch);
        }
        if (!recordedFiles.Matches(listing))
        {
            throw new SigningException($"file digest differs: the {files.Count} files attested for {image}@{digest} list as {listing}, {recorded.Where} records {recordedFiles}", SigningFailure.AttestationMismatch);
        }
        return new AttestedRelease(commit, files, listing);
    }

    /// <summary>predicate.buildDefinition.externalParameters.revision (the Hub commit oci-pack recorded), or null.</summary>
    public static string? AttestedRevision(JsonElement statement) =>
        statement.ValueKind == JsonValueKind.Object && statement.TryGetProperty("predicate", out var p) && p.ValueKind == JsonValueKind.Object
        && p.TryGetProperty("buildDefinition", out var bd) && bd.ValueKind == JsonValueKind.Object && bd.TryGetProperty("externalParameters", out var ep)
        && ep.ValueKind == JsonValueKind.Object && ep.TryGetProperty("revision", out var rev) && rev.ValueKind == JsonValueKind.String ? rev.GetString() : null;

    /// <summary>
    /// The model files of the provenance: each resolvedDependency with a <c>name</c> (its path in the model) and a
    /// sha256 of 64 lowercase hex digits. A path given twice with different digests, or a malformed entry with a name, fails.
    /// </summary>
    public static IReadOnlyList<(string Path, string Sha256Hex)> AttestedModelFiles(JsonElement statement)
    {
        if (!(statement.ValueKind == JsonValueKind.Object && statement.TryGetProperty("predicate", out var p) && p.ValueKind == JsonValueKind.Object
            && p.TryGetProperty("buildDefinition", out var bd) && bd.ValueKind == JsonValueKind.Object
            && bd.TryGetProperty("resolvedDependencies", out var deps) && deps.ValueKind == JsonValueKind.Array))
        {
            return [];
        }
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var dep in deps.EnumerateArray())
        {
            if (dep.ValueKind != JsonValueKind.Object || !dep.TryGetProperty("name", out var name))
            {
                continue; // a base image
            }
            if (name.ValueKind != JsonValueKind.String || name.GetString() is not { Length: > 0 } path
                || !dep.TryGetProperty("digest", out var d) || d.ValueKind != JsonValueKind.Object || !d.TryGetProperty("sha256", out var hexValue)
                || hexValue.ValueKind != JsonValueKind.String || hexValue.GetString() is not { } hex || !IsSha256Hex(hex))
            {
                throw new SigningException($"the attested model file {name.GetRawText()} has no name or no sha256 digest of 64 hex digits", SigningFailure.AttestationMismatch);
            }
            if (files.TryGetValue(path, out var seen) && seen != hex)
            {
                throw new SigningException($"file digest differs: the attestation lists {path} twice, with two digests", SigningFailure.AttestationMismatch);
            }
            files[path] = hex;
        }
        return files.Select(f => (f.Key, f.Value)).ToList();
    }

    private static bool IsSha256Hex(string s) => s.Length == 64 && s.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));
}
