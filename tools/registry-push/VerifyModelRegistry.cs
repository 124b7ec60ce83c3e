using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.ModelRegistry;
using ModelCar.Signing.Verification;

namespace ModelCar.RegistryPush;

/// <summary>
/// The Model Registry side of <c>registry-push verify</c>: <c>--model-registry URL --model-name N --version-name V</c>
/// looks up the version's first model artifact (as <c>mr-register lookup</c> does, same checks on the server's
/// answers) and turns what it recorded (uri digest, image-digest, hf-commit, model-files-digest) into the
/// <see cref="RecordedRelease"/> the attestation is checked against. Without IMAGE the artifact's uri is verified.
/// </summary>
public sealed class VerifyModelRegistry
{
    public Option<Uri?> Server { get; } = new("--model-registry")
    {
        Description = "Model Registry REST URL (e.g. https://NAME.rhoai-model-registries.svc:8443): the attested commit and model files must be what it recorded for --model-name/--version-name, and the digest its artifact's.",
        HelpName = "URL",
        CustomParser = r =>
        {
            var text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (text.Length == 0)
            {
                return null; // a Tekton param left "" means "not given"
            }
            if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0)
            {
                return uri;
            }
            r.AddError($"--model-registry '{text}' is not an http(s) URL");
            return null;
        },
    };

    public Option<string?> ModelName { get; } = new("--model-name") { Description = "Registered model name (with --model-registry).", HelpName = "NAME" };

    public Option<string?> VersionName { get; } = new("--version-name") { Description = "Model version name (with --model-registry).", HelpName = "NAME" };

    public Option<string?> TokenFile { get; } = new("--model-registry-token-file")
    {
        Description = $"Bearer token for the Model Registry (default: ${ModelRegistryTokens.TokenPathVariable}, else {ModelRegistryTokens.ServiceAccountTokenPath} if it exists).",
        HelpName = "FILE",
    };

    public IEnumerable<Option> All => [Server, ModelName, VersionName, TokenFile];

    public bool Enabled(ToolContext ctx) => ctx.Get(Server) is not null;

    /// <summary>What the Model Registry recorded for the version: the record, and the image its uri names (null without a digest).</summary>
    public async Task<(RecordedRelease Record, string Uri)> LookupAsync(ToolContext ctx, HttpSettings settings, CancellationToken ct)
    {
        var server = ctx.Get(Server)!;
        var modelName = ctx.Get(ModelName);
        var versionName = ctx.Get(VersionName);
        if (string.IsNullOrWhiteSpace(modelName) || string.IsNullOrWhiteSpace(versionName))
        {
            throw new UsageException("--model-registry needs --model-name and --version-name");
        }
        if (server.Scheme == "http" && settings.TlsVerify)
        {
            throw new UsageException($"--model-registry '{server}' is plain http: pass --tls-verify=false to allow it");
        }
        var connection = new ModelRegistryConnection(server, settings, ctx.Get(TokenFile), "--model-registry-token-file");
        var found = await ModelRegistration.LookupAsync(connection, modelName, versionName, ctx.Logger, ct).ConfigureAwait(false);
        var artifact = found.Artifact;
        var record = new ReleaseRecordText(found.Where, artifact.Uri!, ModelCarProperties.UriDigest(artifact.Uri),
            ModelCarProperties.ImageDigest, ModelCarProperties.Get(artifact, ModelCarProperties.ImageDigest), ModelCarProperties.Get(artifact, ModelCarProperties.HfCommit),
            ModelCarProperties.ModelFilesDigest, ModelCarProperties.Get(artifact, ModelCarProperties.ModelFilesDigest)).Parse();
        ctx.Logger.LogInformation("{Where}: uri {Uri}, commit {Commit}, model files {Files}", found.Where, artifact.Uri, record.Commit ?? "(none)", record.ModelFilesDigest?.ToString() ?? "(none)");
        return (record, artifact.Uri!);
    }

    /// <summary>docker://HOST/REPO@sha256:… for an artifact uri oci://HOST/REPO@sha256:… (the image to verify when none is named).</summary>
    public static string ImageOfUri(string uri, string where) =>
        uri.StartsWith("oci://", StringComparison.Ordinal) && uri.Contains('@', StringComparison.Ordinal)
            ? "docker://" + uri["oci://".Length..]
            : throw new ToolException($"{where}: the artifact uri '{uri}' is not oci://HOST/REPO@sha256:…: name the image to verify");
}
