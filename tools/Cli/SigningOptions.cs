using System.CommandLine;
using System.Text;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Cli;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Signing;

namespace ModelCar.Signing.Cli;

/// <summary>
/// --sign-key, --sign-key-password-file, --attest: shared by oci-pack and registry-push. The key is
/// loaded (and decrypted) before anything is uploaded; signing happens after the image is complete
/// in each registry. The key, its password and the decrypted key are never logged nor written.
/// </summary>
public sealed class SigningOptions
{
    public const string PasswordEnvironment = "COSIGN_PASSWORD";

    public Option<string?> SignKey { get; } = new("--sign-key")
    {
        Description = "Sign every docker:// output with this key (cosign.key as cosign generate-key-pair or Tekton Chains' signing-secrets hold it, or a PKCS#8 EC P-256 PEM): a cosign signature (sha256-HEX.sig) of each platform manifest and of the index, in that registry, also as a Sigstore bundle referrer (cosign v3's format).",
        HelpName = "FILE",
    };

    public Option<string?> PasswordFile { get; } = new("--sign-key-password-file")
    {
        Description = $"File holding the password of an encrypted --sign-key (one trailing newline is dropped; default: ${PasswordEnvironment}, else empty, as cosign).",
        HelpName = "FILE",
    };

    public Option<bool?> Attest { get; } = new("--attest")
    {
        Description = "Also push an in-toto SLSA provenance attestation (sha256-HEX.att, DSSE-signed with --sign-key). Default: on with --sign-key.",
    };

    public Option<bool?> Sign { get; } = new("--sign")
    {
        Description = "--sign=false: do not sign, even with --sign-key (a Tekton Task passes $(workspaces.signing-secrets.bound), so an unbound optional workspace means no signing). Default: sign when --sign-key is given.",
    };

    public IEnumerable<Option> All => [SignKey, PasswordFile, Attest, Sign];

    public bool Enabled(ToolContext ctx) => ctx.Get(Sign) != false && ctx.Get(SignKey) is { Length: > 0 };

    public bool AttestEnabled(ToolContext ctx) => Enabled(ctx) && (ctx.Get(Attest) ?? true);

    /// <summary>Loads the key (exit 1: missing file, wrong password; exit 2: not EC P-256), or null without --sign-key.</summary>
    public SigningKey? LoadKey(ToolContext ctx)
    {
        if (ctx.Get(Sign) == false)
        {
            ctx.Logger.LogInformation("--sign=false: not signing");
            return null;
        }
        if (ctx.Get(SignKey) is not { Length: > 0 } path)
        {
            if (ctx.Get(Sign) == true)
            {
                throw new UsageException("--sign=true needs --sign-key");
            }
            if (ctx.Get(PasswordFile) is not null || ctx.Get(Attest) == true)
            {
                throw new UsageException("--sign-key-password-file and --attest need --sign-key");
            }
            return null;
        }
        var passwordFile = ctx.Get(PasswordFile);
        try
        {
            var key = CosignKeys.LoadPrivateKey(path, () => ReadPassword(passwordFile));
            ctx.Logger.LogInformation("signing with the ECDSA P-256 key in {Path} (public key sha256 {Fingerprint})", path, key.PublicKey.Fingerprint[..16]);
            return key;
        }
        catch (SigningException e)
        {
            throw e.Failure switch
            {
                SigningFailure.WrongPassword => new ToolException($"--sign-key: {e.Message}; check --sign-key-password-file (or ${PasswordEnvironment})", e),
                SigningFailure.UnsupportedKey => new UsageException($"--sign-key: {e.Message}", e),
                _ => new ToolException($"--sign-key: {e.Message}", e),
            };
        }
    }

    private static byte[] ReadPassword(string? file)
    {
        if (file is null)
        {
            return Encoding.UTF8.GetBytes(Environment.GetEnvironmentVariable(PasswordEnvironment) ?? "");
        }
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ToolException($"--sign-key-password-file {file}: cannot read it: {e.Message}");
        }
        int length = bytes.Length;
        if (length > 0 && bytes[length - 1] == '\n')
        {
            length--;
            if (length > 0 && bytes[length - 1] == '\r')
            {
                length--;
            }
        }
        var password = bytes[..length];
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(bytes);
        return password;
    }

    /// <summary>
    /// Signs (and attests) the pushed image in each registry. A failure here comes after the image was
    /// pushed: exit 1, saying the image is pushed but unsigned (a re-run finds the blobs and signs).
    /// </summary>
    public static async Task<IReadOnlyList<SignedImage>> SignPushedAsync(SigningKey key, IReadOnlyList<(RegistryClient Client, string Repository)> registries, Digest root,
        Func<string, Digest, IReadOnlyList<(Digest Digest, ImageManifest Manifest)>, byte[]>? statement, ILogger logger, CancellationToken ct,
        IReadOnlyList<PreparedBundle>? extra = null)
    {
        var signer = new ImageSigner(key, logger);
        var results = new List<SignedImage>();
        foreach (var (client, repository) in registries)
        {
            var name = $"{client.Registry}/{repository}@{root}";
            try
            {
                results.Add(await signer.SignAsync(new RegistryRepository(client, repository), root, statement, InToto.SlsaProvenanceV1, ct, extra).ConfigureAwait(false));
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                throw new ToolException($"the image is pushed to {name} but unsigned{(results.Count > 0 ? $" there ({results.Count} other registr{(results.Count == 1 ? "y is" : "ies are")} signed)" : "")}: {ErrorText.Describe(e)}; run again to sign it (nothing is uploaded again)", e);
            }
        }
        return results;
    }
}

/// <summary>
/// The Tekton results of a signed push: the manifests at the signature and attestation tags (comma-separated, per
/// output in order, each platform then the index) and the model file listing digest the attestation was built from.
/// Always written (empty when nothing was signed): a Pipeline may pass them on to mr-register either way.
/// </summary>
public static class SigningResults
{
    public const string SignatureDigests = "SIGNATURE_DIGESTS";
    public const string AttestationDigests = "ATTESTATION_DIGESTS";
    public const string ModelFilesDigest = "MODEL_FILES_DIGEST";

    public static IReadOnlyList<string> Names { get; } = [SignatureDigests, AttestationDigests, ModelFilesDigest];

    public static void Write(ToolContext ctx, IReadOnlyList<SignedImage> signed, Digest? modelFiles)
    {
        ctx.Results.Write(SignatureDigests, string.Join(",", signed.SelectMany(s => s.Signatures).Select(a => a.Manifest.ToString()).Distinct()));
        ctx.Results.Write(AttestationDigests, string.Join(",", signed.Select(s => s.Attestation).OfType<AttachOutcome>().Select(a => a.Manifest.ToString()).Distinct()));
        ctx.Results.Write(ModelFilesDigest, modelFiles?.ToString() ?? "");
    }

    /// <summary>
    /// The provenance statement of <paramref name="modelsPath"/>'s files, reporting the digest of their listing
    /// (<see cref="ModelFileListing"/>) to <paramref name="files"/>: what the Model Registry records to check the attestation against.
    /// </summary>
    public static Func<string, Digest, IReadOnlyList<(Digest Digest, ImageManifest Manifest)>, byte[]> Statement(string? modelsPath,
        IReadOnlyDictionary<string, object> external, string builderId, string? invocationId, Action<Digest> files) =>
        (identity, digest, manifests) =>
        {
            files(ModelFileListing.Of(ModelCarProvenance.ModelFiles(manifests.Select(m => m.Manifest).ToList(), modelsPath)));
            return ModelCarProvenance.Statement(identity, digest, manifests, modelsPath, external, builderId, invocationId, null);
        };
}

/// <summary>Who built it, for the provenance: the Tekton TaskRun when the Task passes it (env), else the tool.</summary>
public static class BuilderIdentity
{
    public const string BuilderIdEnvironment = "MODELCAR_BUILDER_ID";
    public const string TaskRunNameEnvironment = "TASKRUN_NAME";
    public const string TaskRunUidEnvironment = "TASKRUN_UID";
    public const string TaskRunNamespaceEnvironment = "TASKRUN_NAMESPACE";

    public static (string BuilderId, string? InvocationId) From(string tool, Func<string, string?> env)
    {
        var name = env(TaskRunNameEnvironment);
        var uid = env(TaskRunUidEnvironment);
        var ns = env(TaskRunNamespaceEnvironment);
        string? invocation = name is { Length: > 0 } || uid is { Length: > 0 }
            ? string.Join("/", new[] { ns, name, uid }.Where(s => !string.IsNullOrEmpty(s)))
            : null;
        var builder = env(BuilderIdEnvironment) is { Length: > 0 } b ? b
            : invocation is not null ? $"https://tekton.dev/v1/TaskRun/modelcar-tools/{tool}" : $"https://github.com/modelcar/modelcar-tools/{tool}";
        return (builder, invocation);
    }
}
