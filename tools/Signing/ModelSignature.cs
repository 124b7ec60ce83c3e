using System.Security.Cryptography;
using System.Text.Json;

namespace ModelCar.Signing;

/// <summary>A model file for the OpenSSF model signature: its path in the model directory ('/'-separated) and sha256 (hex).</summary>
public sealed record ModelFileDigest(string Path, string Sha256Hex);

/// <summary>
/// The OpenSSF model-signing v1.0 signature (sigstore/model-transparency, <c>model_signing</c>): a Sigstore
/// bundle v0.3 whose DSSE envelope holds an in-toto Statement v1 with predicate type
/// <c>https://model_signing/signature/v1.0</c> (src/model_signing/_signing/signing.py Payload):
/// subject = [{name: the model directory's name, digest: {sha256: sha256 over the resources' raw digests in
/// order}}], predicate = {serialization: {method: "files", hash_type: "sha256", allow_symlinks, ignore_paths},
/// resources: [{name: path, algorithm: "sha256", digest: hex}]} sorted as model_signing sorts paths (by
/// component). <c>model_signing verify key MODEL_DIR --signature model.sig --public_key cosign.pub</c> re-hashes
/// the directory with those serialization parameters (its default ignore list — .git, .gitattributes, .github,
/// .gitignore at the top — applies too, so those files are not resources) and compares; the key hint is
/// model_signing's (hex sha256 of the public key's PEM). Built from digests already computed: reads no file.
/// </summary>
public static class ModelSignature
{
    public const string PredicateType = "https://model_signing/signature/v1.0";
    public const string DefaultFileName = "model.sig";

    /// <summary>What model_signing sign ignores by default (its git paths, src/model_signing/hashing.py) plus the signature file itself.</summary>
    public static readonly IReadOnlyList<string> IgnorePaths = [".git", ".gitattributes", ".github", ".gitignore", DefaultFileName];

    /// <summary>True for a path model_signing does not hash with <see cref="IgnorePaths"/> (the path or a parent is one of them, relative to the model root).</summary>
    public static bool IsIgnored(string path) => IgnorePaths.Any(p => path == p || path.StartsWith(p + "/", StringComparison.Ordinal));

    /// <summary>The statement; <paramref name="files"/> may hold ignored paths (they are left out). Symlinks are given with their target's digest (then allow_symlinks is true).</summary>
    public static byte[] Statement(string modelName, IEnumerable<ModelFileDigest> files, bool allowSymlinks)
    {
        var resources = files.Where(f => !IsIgnored(f.Path)).OrderBy(f => f.Path, PathOrder.Instance).ToList();
        if (resources.Select(r => r.Path).Distinct(StringComparer.Ordinal).Count() != resources.Count)
        {
            throw new ArgumentException("a path is given twice", nameof(files));
        }
        using var root = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var r in resources)
        {
            if (r.Sha256Hex.Length != 64 || !r.Sha256Hex.All(char.IsAsciiHexDigitLower))
            {
                throw new ArgumentException($"{r.Path}: '{r.Sha256Hex}' is not a lower-case sha256 hex digest", nameof(files));
            }
            root.AppendData(Convert.FromHexString(r.Sha256Hex));
        }
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            InToto.WriteStatementHead(w, [(modelName, "sha256", Convert.ToHexStringLower(root.GetHashAndReset()))], PredicateType);
            w.WriteStartObject("predicate");
            w.WriteStartObject("serialization");
            w.WriteString("method", "files");
            w.WriteString("hash_type", "sha256");
            w.WriteBoolean("allow_symlinks", allowSymlinks);
            w.WriteStartArray("ignore_paths");
            foreach (var p in IgnorePaths)
            {
                w.WriteStringValue(p);
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartArray("resources");
            foreach (var r in resources)
            {
                w.WriteStartObject();
                w.WriteString("name", r.Path);
                w.WriteString("algorithm", "sha256");
                w.WriteString("digest", r.Sha256Hex);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>The bundle (model.sig) over <paramref name="statement"/>, with model_signing's key hint.</summary>
    public static byte[] Sign(SigningKey key, byte[] statement) => SigstoreBundle.SignStatement(key, statement, SigstoreBundle.ModelSigningHint(key.PublicKey));

    /// <summary>Writes <paramref name="bundle"/> to <paramref name="path"/> (mode 0644, for other pods) through a temp file renamed into place.</summary>
    public static void Write(string path, byte[] bundle)
    {
        var full = System.IO.Path.GetFullPath(path);
        var temp = full + ".tmp-" + Environment.ProcessId;
        try
        {
            File.WriteAllBytes(temp, bundle);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
            }
            throw new SigningException($"model signature {path}: cannot write it: {e.Message}", SigningFailure.KeyFile, e);
        }
    }

    /// <summary>pathlib.PurePosixPath's order: component by component, each by code point.</summary>
    public sealed class PathOrder : IComparer<string>
    {
        public static readonly PathOrder Instance = new();

        public int Compare(string? x, string? y)
        {
            var a = (x ?? "").Split('/');
            var b = (y ?? "").Split('/');
            for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
            {
                int c = string.CompareOrdinal(a[i], b[i]);
                if (c != 0)
                {
                    return c;
                }
            }
            return a.Length.CompareTo(b.Length);
        }
    }
}
