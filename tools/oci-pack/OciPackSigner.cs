using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Oci;
using ModelCar.Packing;
using ModelCar.Signing;
using ModelCar.Signing.Cli;

namespace ModelCar.OciPack;

/// <summary>
/// oci-pack's <see cref="PackRequest.AfterCommit"/> hook: the OpenSSF model signature (--model-signature) from the sha256 of
/// each file taken during the one read, then the cosign signatures, the SLSA attestation and the bundle referrers of the
/// image in each registry output (<see cref="SigningOptions.SignPushedAsync"/>). Packing does not reference Signing: the
/// command brings the signer.
/// </summary>
/// <param name="external">The attestation's external parameters, given the platforms packed.</param>
internal sealed class OciPackSigner(SigningKey key, string? modelSignatureFile, bool attest, string modelsPath, Func<IReadOnlyList<Platform>, Dictionary<string, object>> external, ILogger log)
{
    public IReadOnlyList<SignedImage> Signed { get; private set; } = [];

    /// <summary>The digest of the model file listing the attestation was built from (null without one).</summary>
    public Digest? ModelFiles { get; private set; }

    public async Task SignAsync(PackedImage image, CancellationToken ct)
    {
        PreparedBundle? modelBundle = null;
        if (modelSignatureFile is not null)
        {
            // from the sha256 of each file taken during the one read: no file is opened again
            var statementBytes = ModelSignature.Statement(image.ModelName, ModelSignatureFiles(image), image.Tree.Entries.Any(e => e.Kind == ModelEntryKind.Symlink));
            modelBundle = new PreparedBundle(ModelSignature.PredicateType, statementBytes, ModelSignature.Sign(key, statementBytes));
            ModelSignature.Write(modelSignatureFile, modelBundle.Bundle);
            log.LogInformation("wrote the OpenSSF model signature of {Files} file(s) to {Path}", image.Tree.Entries.Count, modelSignatureFile);
        }
        if (image.Registries.Count > 0)
        {
            // from the manifests just pushed: the per-file sha256 oci-pack put on the layers during the one read
            var (builderId, invocationId) = BuilderIdentity.From(OciPackCommand.Name, Environment.GetEnvironmentVariable);
            var statement = attest ? SigningResults.Statement(modelsPath, external(image.Image.Platforms), builderId, invocationId, d => ModelFiles = d) : null;
            Signed = await SigningOptions.SignPushedAsync(key, image.Registries, image.Image.Manifest.Digest, statement, log, ct, modelBundle is null ? null : [modelBundle]).ConfigureAwait(false);
        }
    }

    /// <summary>Each packed file with the sha256 taken inline, a symlink with its target's (<see cref="ModelTree.EntryDigests"/>).</summary>
    private static List<ModelFileDigest> ModelSignatureFiles(PackedImage image)
    {
        try
        {
            return image.Tree.EntryDigests(image.FileSha256).Select(d => new ModelFileDigest(d.Path, d.Sha256Hex)).ToList();
        }
        catch (PackingException e)
        {
            throw new ToolException($"--model-signature: {e.Message}", e);
        }
    }
}
