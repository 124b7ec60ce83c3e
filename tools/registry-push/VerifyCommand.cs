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
    }

    public static readonly Argument<string> Image = new("IMAGE")
    {
        Description = "docker://HOST[:PORT]/REPO@sha256:… (a digest: what is deployed is what is checked).",
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

    public static Command Create()
    {
        var cmd = new Command("verify", "Check the cosign signatures (each platform and the index) and the SLSA provenance attestation of an image digest with a public key.");
        cmd.Arguments.Add(Image);
        foreach (var o in new Option[] { Key, NoAttestation, ExpectCommit, Registry.AuthFile, Registry.Login, Registry.Creds, Registry.Username, Registry.PasswordFile, Registry.TlsVerify, Registry.CaFile, Registry.Retries, Registry.StallTimeout, Registry.MaxRetryWait })
        {
            cmd.Options.Add(o);
        }
        cmd.SetToolAction(RegistryPushCommand.Name, [RegistryOptions.Hints], RunAsync);
        return cmd;
    }

    private static async Task<int> RunAsync(ToolContext ctx, CancellationToken ct)
    {
        var text = ctx.ParseResult.GetValue(Image) ?? "";
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
            key = CosignKeys.LoadPublicKey(ctx.Required(Key));
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
            if (ctx.Get(ExpectCommit) is { Length: > 0 } expected && commit != expected)
            {
                throw new ToolException($"{reference.Registry}/{reference.Repository}@{digest}: commit differs: the attestation says {commit ?? "(no revision)"}, expected {expected}");
            }
            ctx.Logger.LogInformation("verified {Image}: {Count} signature(s) ({Digests}){Attestation}", $"{reference.Registry}/{reference.Repository}@{digest}", verified.Checked.Count,
                string.Join(", ", verified.Checked.Select(d => d.Encoded[..12])), statement is null ? "" : ", SLSA provenance attestation" + (commit is null ? "" : " of commit " + commit));
            ctx.WriteResult($"{reference.Registry}/{reference.Repository}@{digest}");
            ctx.Results.Write(Result.VerifiedDigest, digest.ToString());
            ctx.Results.Write(Result.VerifiedCommit, commit ?? "");
            return ExitCodes.Ok;
        }
    }

    /// <summary>predicate.buildDefinition.externalParameters.revision (the Hub commit oci-pack recorded).</summary>
    public static string? AttestedRevision(JsonElement statement) =>
        statement.TryGetProperty("predicate", out var p) && p.TryGetProperty("buildDefinition", out var bd) && bd.TryGetProperty("externalParameters", out var ep)
        && ep.ValueKind == JsonValueKind.Object && ep.TryGetProperty("revision", out var rev) && rev.ValueKind == JsonValueKind.String ? rev.GetString() : null;
}
