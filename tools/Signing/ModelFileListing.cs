using System.Text;
using ModelCar.Oci;

namespace ModelCar.Signing;

/// <summary>
/// One digest for a model's file set, to record beside a release (the Model Registry) and compare
/// with the files an attestation lists: sha256 over the <c>sha256sum</c> lines of the files,
/// <c>HEX␠␠PATH\n</c>, sorted by path (ordinal, as <c>LC_ALL=C sort -k2</c>); PATH relative to the
/// model directory (the image's /models). So <c>sha256sum FILE… | LC_ALL=C sort -k2 | sha256sum</c>
/// in the model directory gives the same hex.
/// </summary>
public static class ModelFileListing
{
    public static Digest Of(IEnumerable<(string Path, string Sha256Hex)> files)
    {
        var text = new StringBuilder();
        foreach (var (path, hex) in files.OrderBy(f => f.Path, StringComparer.Ordinal))
        {
            text.Append(hex.ToLowerInvariant()).Append("  ").Append(path).Append('\n');
        }
        return Digest.Sha256(Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>The listing digest of the model files a statement's provenance was built from (<see cref="ResourceDigest.Path"/> set).</summary>
    public static Digest Of(IEnumerable<ResourceDigest> files) =>
        Of(files.Where(f => f.Path is not null).Select(f => (f.Path!, f.Sha256Hex)));
}
