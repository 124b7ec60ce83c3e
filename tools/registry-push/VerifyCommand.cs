using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Cli;
using ModelCar.Signing;
using ModelCar.Signing.Verification;

namespace ModelCar.RegistryPush;

/// <summary>
/// <c>registry-push verify docker://HOST/REPO@sha256:… --key cosign.pub</c>: checks, before deploy,
/// what a node enforcing a sigstoreSigned policy (matchRepository) would check, plus the attestation.
/// Exit 0 only if all hold; 1 with one line naming what failed.
/// </summary>
public static class VerifyCommand
{
    public static class Result
    {
        public const string VerifiedDigest = "VERIFIED_DIGEST";
        public const string VerifiedCommit = "VERIFIED_COMMIT";

        /// <summary>oci://HOST/REPO@sha256:… of what was verified: the InferenceService's storageUri.</summary>
        public const string ModelUri = "MODEL_URI";
    }

    public static IReadOnlyList<string> ResultNames { get; } = [Result.VerifiedDigest, Result.VerifiedCommit, Result.ModelUri];

    public static readonly Argument<string> Image = new("IMAGE")
    {
        Description = "docker://HOST[:PORT]/REPO@sha256:… (a digest: what is deployed is what is checked). With --model-registry it may be left out (or \"\"): the artifact's uri is verified.",
        Arity = ArgumentArity.ZeroOrOne,
    };

    public static readonly Option<string> Key = new("--key")
    {
        Description = "Public key (cosign.pub, PEM PUBLIC KEY, ECDSA P-256) the signatures and the attestation must verify with.",
        HelpName = "FILE",
        Required = true,
    };

    public static readonly Option<bool> NoAttestation = new("--no-attestation")
    {
        Description = "Check only the signatures (default: the SLSA provenance attestation of the digest is required too).",
    };

    public static readonly Option<string?> ExpectCommit = new("--expect-commit")
    {
        Description = "The attested model revision (the Hub commit) must be this one (e.g. what the Model Registry recorded).",
        HelpName = "COMMIT",
    };

    private static readonly RegistryOptions Registry = new(defaultJobs: 1, defaultRetries: 5);

    private static readonly VerifyModelRegistry ModelRegistry = new();

    public static Command Create()
    {
        var cmd = new Command("verify", "Check the cosign signatures (each platform and the index) and the SLSA provenance attestation of an image digest with a public key.");
        cmd.Arguments.Add(Image);
        Option[] options = [Key, NoAttestation, ExpectCommit, .. ModelRegistry.All, Registry.AuthFile, Registry.Login, Registry.Creds, Registry.Username, Registry.PasswordFile, Registry.TlsVerify, Registry.CaFile, Registry.Retries, Registry.StallTimeout, Registry.MaxRetryWait];
        foreach (var o in options)
        {
            cmd.Options.Add(o);
        }
        cmd.SetToolAction(RegistryPushCommand.Name, [RegistryOptions.Hints, e => Hints.For(e, ModelCar.ModelRegistry.ModelRegistryReason.NoToken, "or give one with --model-registry-token-file")], RunAsync);
        return cmd;
    }

    private static async Task<int> RunAsync(ToolContext ctx, CancellationToken ct)
    {
        var text = ctx.ParseResult.GetValue(Image) ?? "";
        if (ModelRegistry.Enabled(ctx) && ctx.Get(NoAttestation))
        {
            throw new UsageException("--model-registry checks the attestation: drop --no-attestation");
        }
        if (text.Length == 0 && !ModelRegistry.Enabled(ctx))
        {
            throw new UsageException("name the IMAGE (docker://HOST/REPO@sha256:…), or the version with --model-registry, --model-name and --version-name");
        }
        // the key first: a missing or wrong key file is found before any request
        var keyPath = ctx.Required(Key);
        RecordedRelease? recorded = null;
        if (ModelRegistry.Enabled(ctx))
        {
            var (record, uri) = await ModelRegistry.LookupAsync(ctx, Registry.HttpSettingsFrom(ctx), ct).ConfigureAwait(false);
            recorded = record;
            if (text.Length == 0)
            {
                text = VerifyModelRegistry.ImageOfUri(uri, record.Where);
            }
        }
        RegistryReference reference;
        try
        {
            reference = ImageLocation.Parse(text) is RegistryLocation r ? r.Reference : throw new FormatException("not docker://");
        }
        catch (FormatException e)
        {
            throw new UsageException($"IMAGE '{text}': use docker://HOST[:PORT]/REPO@sha256:… ({e.Message})");
        }
        if (reference.Digest is not { } digest)
        {
            throw new UsageException($"IMAGE '{text}': name the digest (docker://HOST/REPO@sha256:…): a tag can move between the check and the deploy");
        }
        VerificationKey key;
        try
        {
            key = CosignKeys.LoadPublicKey(keyPath);
        }
        catch (SigningException e)
        {
            throw e.IsInvalidInput ? new UsageException($"--key: {e.Message}", e) : new ToolException($"--key: {e.Message}", e);
        }
        using (key)
        {
            var credentials = Registry.CredentialsFrom(ctx);
            var settings = Registry.HttpSettingsFrom(ctx);
            using var http = HttpClientFactory.Create(settings);
            var client = new RegistryClient(reference.Registry, http, settings, credentials, ctx.Logger) { AuthRepository = reference.Repository };
            await client.PingAsync(ct).ConfigureAwait(false);
            var verifier = new ImageVerifier(new RegistryRepository(client, reference.Repository), key);
            VerifiedImage verified;
            try
            {
                verified = await verifier.VerifyAsync(digest, !ctx.Get(NoAttestation), InToto.SlsaProvenanceV1, ct).ConfigureAwait(false);
            }
            catch (SigningException e)
            {
                throw new ToolException(e.Message, e);
            }
            using var statement = verified.Statement;
            string? commit = statement is null ? null : AttestedRevision(statement.RootElement);
            if (recorded is not null)
            {
                try
                {
                    var attested = ReleaseCheck.Check($"{reference.Registry}/{reference.Repository}", digest, statement!.RootElement, recorded);
                    ctx.Logger.LogInformation("{Where}: digest, commit and {Files} model file digest(s) match the attestation", recorded.Where, attested.Files.Count);
                }
                catch (SigningException e)
                {
                    throw new ToolException(e.Message, e);
                }
            }
            if (ctx.Get(ExpectCommit) is { Length: > 0 } expected && commit != expected)
            {
                throw new ToolException($"{reference.Registry}/{reference.Repository}@{digest}: commit differs: the attestation says {commit ?? "(no revision)"}, expected {expected}");
            }
            ctx.Logger.LogInformation("verified {Image}: {Count} signature(s) ({Digests}){Attestation}", $"{reference.Registry}/{reference.Repository}@{digest}", verified.Checked.Count,
                string.Join(", ", verified.Checked.Select(d => d.Encoded[..12])), statement is null ? "" : ", SLSA provenance attestation" + (commit is null ? "" : " of commit " + commit));
            ctx.WriteResult($"{reference.Registry}/{reference.Repository}@{digest}");
            ctx.Results.Write(Result.VerifiedDigest, digest.ToString());
            ctx.Results.Write(Result.VerifiedCommit, commit ?? "");
            ctx.Results.Write(Result.ModelUri, $"oci://{reference.Registry}/{reference.Repository}@{digest}");
            return ExitCodes.Ok;
        }
    }

    /// <summary>predicate.buildDefinition.externalParameters.revision (the Hub commit oci-pack recorded).</summary>
    public static string? AttestedRevision(JsonElement statement) => ReleaseCheck.AttestedRevision(statement);
}
