using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.Registry.Cli;
using ModelCar.Signing;
using ModelCar.Signing.Cli;

namespace ModelCar.RegistryPush;

/// <summary>Push an OCI image (oci: layout or oci-archive:) to one or more registries.</summary>
public static class RegistryPushCommand
{
    /// <summary>The Tekton results this tool writes with --results-dir (the Tasks' contract test checks them).</summary>
    public static class Result
    {
        public const string ImageDigest = "IMAGE_DIGEST";
        public const string ImageUrl = "IMAGE_URL";
    }

    public static IReadOnlyList<string> ResultNames { get; } = [Result.ImageDigest, Result.ImageUrl, .. SigningResults.Names, .. VerifyCommand.ResultNames];

    public const string Name = "registry-push";

    /// <summary>Where a ModelCar holds its model (KServe's /models): cut from layer titles for the attested file paths.</summary>
    private const string ModelsPath = "/models";

    public static readonly Option<string> Source = new("--source")
    {
        Description = "Image to push: oci:DIR[:REF] or oci-archive:FILE[:REF] (REF = org.opencontainers.image.ref.name; without REF the index must hold one image).",
        HelpName = "IMAGE",
        Required = true,
    };

    public static readonly Option<string[]> Dest = new("--dest")
    {
        Description = "Destination docker://HOST[:PORT]/REPO[:TAG] (repeatable: all are pushed concurrently).",
        HelpName = "docker://HOST/REPO[:TAG]",
        Required = true,
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>Credentials, TLS, jobs, chunking, retries, --max-blob-size: shared with oci-pack --output docker://.</summary>
    private static readonly RegistryOptions Registry = new(defaultJobs: 4, defaultRetries: 5);

    /// <summary>--sign-key, --sign-key-password-file, --attest (shared with oci-pack).</summary>
    private static readonly SigningOptions Signing = new();

    public static readonly Option<string?> StateDir = new("--state-dir")
    {
        Description = "Directory for the upload state that lets a later run resume interrupted chunked uploads (default: next to the source, SOURCE.registry-push-state.json).",
        HelpName = "DIR",
    };

    public static readonly Option<string?> DigestFile = new("--digestfile")
    {
        Description = "Write the pushed manifest digest to FILE.",
        HelpName = "FILE",
    };

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Push an OCI image (oci: layout or oci-archive:) to one or more registries.");
        foreach (var option in new Option[] { Source, Dest, Registry.AuthFile, Registry.Login, Registry.Creds, Registry.Username, Registry.PasswordFile, Registry.TlsVerify, Registry.CaFile,
            Registry.Jobs, Registry.ChunkSize, Registry.MaxBlobSize, Registry.Retries, Registry.StallTimeout, Registry.MaxRetryWait, StateDir, DigestFile, Signing.SignKey, Signing.PasswordFile, Signing.Attest, Signing.Sign })
        {
            root.Options.Add(option);
        }
        root.Subcommands.Add(VerifyCommand.Create());
        root.SetToolAction(Name, RunAsync, RegistryOptions.Hints);
        return root;
    }

    private static async Task<int> RunAsync(ToolContext ctx, CancellationToken ct)
    {
        var sourceLocation = ParseSource(ctx.Required(Source));
        var destinations = (ctx.Get(Dest) ?? []).Select(ParseDest).ToList();
        if (destinations.Count == 0)
        {
            throw new UsageException("at least one --dest is required");
        }
        var credentials = Registry.CredentialsFrom(ctx);
        RegistryOptions.WarnUnusedLogins(credentials, destinations.Select(d => d.Registry).ToList(), "--dest", ctx.Logger);
        var settings = Registry.HttpSettingsFrom(ctx);
        var upload = Registry.UploadOptionsFrom(ctx, settings);
        // the key is read (and decrypted) before anything is uploaded: a wrong password pushes nothing
        using var signingKey = Signing.LoadKey(ctx);

        using IImageSource source = LocalImage.Open(sourceLocation);
        var root = source.ResolveRoot(LocalImage.ReferenceOf(sourceLocation));
        using var progress = new ProgressReporter(ctx.Logger, "push", 0);
        var pusher = new ImagePusher(source, root, upload, ctx.Get(Registry.Jobs), ctx.Logger, progress);
        pusher.CheckSource();
        if (ctx.Get(Registry.MaxBlobSize) is { } maxBlobSize)
        {
            CheckBlobSizes(pusher.Blobs, maxBlobSize);
        }
        // only chunked sessions can be resumed by a later run: no state file (nor a warning about
        // its place) for an image whose blobs all go up in one request; --state-dir is checked always
        if (pusher.HasChunkedBlobs || ctx.Get(StateDir) is not null)
        {
            pusher.State = OpenState(ctx, sourceLocation);
        }
        ctx.Logger.LogInformation("pushing {Source} ({Digest}, {Blobs} blobs, {Size}) to {Count} destination(s)", source.Description, root.Digest,
            pusher.Blobs.Count, SizeParser.Format(pusher.TotalBlobBytes), destinations.Count);

        using var http = HttpClientFactory.Create(settings);
        var targets = destinations.Select(d => (d, client: new RegistryClient(d.Registry, http, settings, credentials, ctx.Logger) { AuthRepository = d.Repository })).ToList();
        var results = await pusher.PushAsync(targets, ct).ConfigureAwait(false);
        IReadOnlyList<SignedImage> signed = [];
        Digest? modelFiles = null;
        if (signingKey is not null)
        {
            var (builderId, invocationId) = BuilderIdentity.From(Name, Environment.GetEnvironmentVariable);
            var external = new Dictionary<string, object> { ["source"] = sourceLocation.ToString()!, ["dest"] = destinations.Select(d => d.ToString()).ToArray() };
            // the model files as KServe mounts them (/models): paths relative to the model, as oci-pack attests them
            var statement = Signing.AttestEnabled(ctx) ? SigningResults.Statement(ModelsPath, external, builderId, invocationId, d => modelFiles = d) : null;
            signed = await SigningOptions.SignPushedAsync(signingKey, targets.Select(t => (t.client, t.d.Repository)).ToList(), root.Digest, statement, ctx.Logger, ct).ConfigureAwait(false);
        }

        foreach (var r in results)
        {
            ctx.WriteResult(r.PinnedReference);
        }
        ctx.Results.Write(Result.ImageDigest, root.Digest.ToString());
        var first = destinations[0];
        ctx.Results.Write(Result.ImageUrl, first.Digest is null ? $"{first.Name}:{first.Tag ?? "latest"}" : $"{first.Name}@{first.Digest}");
        SigningResults.Write(ctx, signed, modelFiles);
        if (ctx.Get(DigestFile) is { Length: > 0 } digestFile)
        {
            Files.WriteAllTextAtomic(digestFile, root.Digest.ToString());
        }
        return ExitCodes.Ok;
    }

    /// <summary>
    /// --state-dir must be writable (else exit 1). The default place next to the source may be
    /// read-only (a read-only workspace): then one warning, and the push goes on without resume
    /// across runs (sessions are then cancelled on failure or signal instead of kept).
    /// </summary>
    private static UploadStateStore? OpenState(ToolContext ctx, ImageLocation source)
    {
        var dir = ctx.Get(StateDir);
        // by default beside the layout directory or archive: it survives a Tekton retry with the source's workspace
        var path = dir is null ? LocalImage.Beside(source, "." + UploadStateStore.FileName) : Path.Combine(dir, UploadStateStore.FileName);
        try
        {
            return UploadStateStore.Open(path, ctx.Logger);
        }
        catch (Exception e) when (dir is not null && e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ToolException($"--state-dir '{dir}': cannot write the upload state there: {e.Message}");
        }
        catch (Exception e) when (dir is null && e is IOException or UnauthorizedAccessException)
        {
            ctx.Logger.LogWarning("cannot write the upload state next to the source ({Path}: {Error}); an interrupted chunked upload will start over in the next run (set --state-dir to a writable directory)",
                path, e.Message);
            return null;
        }
    }

    private static ImageLocation ParseSource(string text)
    {
        ImageLocation location;
        try
        {
            location = ImageLocation.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"--source: {e.Message}");
        }
        if (!LocalImage.IsLocal(location))
        {
            throw new UsageException($"--source '{text}': use oci:DIR[:REF] or oci-archive:FILE[:REF]");
        }
        return location;
    }

    private static RegistryReference ParseDest(string text)
    {
        if (!text.StartsWith("docker://", StringComparison.Ordinal))
        {
            throw new UsageException($"--dest '{text}': use docker://HOST[:PORT]/REPO[:TAG]");
        }
        try
        {
            return ((RegistryLocation)ImageLocation.Parse(text)).Reference;
        }
        catch (FormatException e)
        {
            throw new UsageException($"--dest: {e.Message}");
        }
    }

    /// <summary>Fails on the first blob over the limit, naming its layer title (else its digest) and the limit.</summary>
    public static void CheckBlobSizes(IEnumerable<Descriptor> blobs, long maxBlobSize) => RegistryOptions.CheckBlobSizes(blobs, maxBlobSize);
}
