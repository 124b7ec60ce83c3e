using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.Oci;
using ModelCar.Oci.Archive;
using ModelCar.Oci.Layout;
using ModelCar.Registry;
using ModelCar.Registry.Auth;

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

    public static IReadOnlyList<string> ResultNames { get; } = [Result.ImageDigest, Result.ImageUrl];

    public const string Name = "registry-push";

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

    public static readonly Option<string[]> AuthFile = new("--authfile")
    {
        Description = "Credentials file: containers-auth.json / docker config.json ({\"auths\":…}) or legacy .dockercfg (repeatable: "
            + "merged in order, the first file with an entry for a host wins; a missing file is an error; default: $REGISTRY_AUTH_FILE, then the standard locations).",
        HelpName = "FILE",
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
    };

    public static readonly Option<string[]> Login = new("--login")
    {
        Description = "Credentials for one registry: HOST[:PORT]=USER:PASSWORD_FILE (repeatable); the file is read again after a 401 (rotated tokens). "
            + "Beats --creds/--username and the auth files for that host.",
        HelpName = "HOST=USER:FILE",
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
    };

    public static readonly Option<string?> Creds = new("--creds")
    {
        Description = "Credentials USER:PASSWORD for every destination not named by --login (prefer --username with --password-file).",
        HelpName = "USER[:PASS]",
    };

    public static readonly Option<string?> Username = new("--username") { Description = "User name (with --password-file) for every destination not named by --login.", HelpName = "USER" };

    public static readonly Option<string?> PasswordFile = new("--password-file")
    {
        Description = "File holding the password or token; read again after a 401 in the middle of a push (rotated tokens).",
        HelpName = "FILE",
    };

    public static readonly Option<long?> MaxBlobSize = CommonOptions.Size("--max-blob-size",
        "Refuse, before uploading anything, an image with a blob larger than SIZE (default: no limit; for a default quay, whose MAXIMUM_LAYER_SIZE 20G means 20000000000 bytes, pass 20000000000).");

    public static readonly Option<bool> TlsVerify = CommonOptions.TlsVerify();
    public static readonly Option<string[]> CaFile = CommonOptions.CaFile();
    public static readonly Option<int> Jobs = CommonOptions.Jobs(4);
    public static readonly Option<int> Retries = CommonOptions.Retries(5);

    public static readonly Option<long?> ChunkSize = CommonOptions.Size("--chunk-size",
        "Upload blobs larger than SIZE in PATCH chunks of SIZE (default: monolithic, except blobs over 10 GiB which go in 1 GiB chunks).");

    public static readonly Option<int> StallTimeout = CommonOptions.StallTimeout();
    public static readonly Option<int> MaxRetryWait = CommonOptions.MaxRetryWait();

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
        foreach (var option in new Option[] { Source, Dest, AuthFile, Login, Creds, Username, PasswordFile, TlsVerify, CaFile, Jobs, ChunkSize, MaxBlobSize, Retries, StallTimeout, MaxRetryWait, StateDir, DigestFile })
        {
            root.Options.Add(option);
        }
        root.SetToolAction(Name, RunAsync);
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
        var credentials = CredentialsFrom(ctx);
        if (credentials is PerHostCredentialProvider perHost)
        {
            foreach (var host in perHost.Hosts.Where(h => !destinations.Any(d => string.Equals(d.Registry, h, StringComparison.OrdinalIgnoreCase))))
            {
                ctx.Logger.LogWarning("--login {Host} matches no --dest (hosts: {Hosts}): those credentials are not used", host, string.Join(", ", destinations.Select(d => d.Registry).Distinct()));
            }
        }
        var settings = CommonOptions.HttpSettingsFrom(ctx.ParseResult, TlsVerify, CaFile, Retries, StallTimeout, MaxRetryWait);
        var upload = new UploadOptions
        {
            ChunkSize = ctx.Get(ChunkSize),
            MaxRecoveries = Math.Max(settings.MaxRetries, 1),
            RetryBaseDelay = settings.RetryBaseDelay,
        };

        using IImageSource source = sourceLocation switch
        {
            OciLayoutLocation l => OciLayout.Open(l.Path),
            OciArchiveLocation a => OciArchiveReader.Open(a.Path),
            _ => throw new UsageException($"--source {sourceLocation}: only oci: and oci-archive: sources are supported"),
        };
        var reference = sourceLocation switch
        {
            OciLayoutLocation l => l.Reference,
            OciArchiveLocation a => a.Reference,
            _ => null,
        };
        var root = source.ResolveRoot(reference);
        using var progress = new ProgressReporter(ctx.Logger, "push", 0);
        var pusher = new ImagePusher(source, root, upload, ctx.Get(Jobs), ctx.Logger, progress);
        pusher.CheckSource();
        if (ctx.Get(MaxBlobSize) is { } maxBlobSize)
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
        var targets = destinations.Select(d =>
        {
            var client = new RegistryClient(d.Registry, http, settings, credentials, ctx.Logger) { AuthRepository = d.Repository };
            return (d, client);
        }).ToList();
        var results = await pusher.PushAsync(targets, ct).ConfigureAwait(false);

        foreach (var r in results)
        {
            ctx.WriteResult(r.PinnedReference);
        }
        ctx.Results.Write(Result.ImageDigest, root.Digest.ToString());
        var first = destinations[0];
        ctx.Results.Write(Result.ImageUrl, first.Digest is null ? $"{first.Name}:{first.Tag ?? "latest"}" : $"{first.Name}@{first.Digest}");
        if (ctx.Get(DigestFile) is { Length: > 0 } digestFile)
        {
            Files.WriteAllTextAtomic(digestFile, root.Digest.ToString());
        }
        return ExitCodes.Ok;
    }

    /// <summary>Default state file: beside the layout directory or archive (it survives a Tekton retry with the source's workspace).</summary>
    public static string DefaultStatePath(ImageLocation source) => source switch
    {
        OciLayoutLocation l => Path.TrimEndingDirectorySeparator(Path.GetFullPath(l.Path)) + ".registry-push-state.json",
        OciArchiveLocation a => Path.GetFullPath(a.Path) + ".registry-push-state.json",
        _ => throw new InvalidOperationException("unexpected source"),
    };

    /// <summary>
    /// --state-dir must be writable (else exit 1). The default place next to the source may be
    /// read-only (a read-only workspace): then one warning, and the push goes on without resume
    /// across runs (sessions are then cancelled on failure or signal instead of kept).
    /// </summary>
    private static UploadStateStore? OpenState(ToolContext ctx, ImageLocation source)
    {
        if (ctx.Get(StateDir) is { } dir)
        {
            try
            {
                return UploadStateStore.Open(Path.Combine(dir, UploadStateStore.FileName), ctx.Logger);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                throw new ToolException($"--state-dir '{dir}': cannot write the upload state there: {e.Message}");
            }
        }
        var path = DefaultStatePath(source);
        try
        {
            return UploadStateStore.Open(path, ctx.Logger);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
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
        if (location is not (OciLayoutLocation or OciArchiveLocation))
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
    public static void CheckBlobSizes(IEnumerable<Descriptor> blobs, long maxBlobSize)
    {
        foreach (var blob in blobs.Where(b => b.Size > maxBlobSize))
        {
            var name = blob.Annotations is { } a && a.TryGetValue(Annotations.Title, out var title) && title.Length > 0
                ? $"layer {title} ({blob.Digest})"
                : $"blob {blob.Digest}";
            throw new ToolException($"{name} is {SizeParser.Format(blob.Size)} ({blob.Size} bytes), over --max-blob-size {SizeParser.Format(maxBlobSize)} ({maxBlobSize} bytes): "
                + "nothing was uploaded; pack the model with smaller layers or push to a registry without that limit");
        }
    }

    /// <summary>
    /// Credentials per destination host: a --login for that host first; else --creds or
    /// --username/--password-file (every host) if given; else the auth files (--authfile in order,
    /// or $REGISTRY_AUTH_FILE, or the standard locations). --creds/--username cannot be combined
    /// with --authfile: one of the two would silently never be used for any host.
    /// Every file the user named is read once here, so a missing one fails before any request.
    /// </summary>
    public static ICredentialProvider CredentialsFrom(ToolContext ctx)
    {
        var creds = ctx.Get(Creds);
        var user = ctx.Get(Username);
        var passwordFile = ctx.Get(PasswordFile);
        var authFiles = (ctx.Get(AuthFile) ?? []).Where(f => f.Length > 0).ToList();
        if (creds is not null && (user is not null || passwordFile is not null))
        {
            throw new UsageException("--creds cannot be combined with --username/--password-file");
        }
        if ((creds is not null || user is not null || passwordFile is not null) && authFiles.Count > 0)
        {
            throw new UsageException("--authfile cannot be combined with --creds or --username/--password-file (those apply to every host): use --login HOST=USER:PASSWORD_FILE for one host");
        }
        ICredentialProvider fallback;
        if (creds is not null)
        {
            int colon = creds.IndexOf(':');
            if (colon <= 0)
            {
                throw new UsageException("--creds must be USER:PASSWORD (there is no interactive prompt; or use --username with --password-file)");
            }
            fallback = new ExplicitCredentialProvider(creds[..colon], creds[(colon + 1)..], null);
        }
        else if (user is not null || passwordFile is not null)
        {
            if (user is null || passwordFile is null)
            {
                throw new UsageException("--username and --password-file go together");
            }
            _ = SecretFile.Read(passwordFile, "password"); // fail early if unreadable
            fallback = new ExplicitCredentialProvider(user, null, passwordFile);
        }
        else
        {
            fallback = new AuthFileLookup(AuthFileLookup.CandidateFiles(authFiles, Environment.GetEnvironmentVariable), ctx.Logger).Validate();
        }

        var perHost = new Dictionary<string, ICredentialProvider>(StringComparer.OrdinalIgnoreCase);
        foreach (var text in ctx.Get(Login) ?? [])
        {
            LoginSpec login;
            try
            {
                login = LoginSpec.Parse(text);
            }
            catch (FormatException e)
            {
                throw new UsageException($"--login '{text}' {e.Message}");
            }
            if (perHost.ContainsKey(login.Host))
            {
                throw new UsageException($"--login names {login.Host} twice");
            }
            _ = SecretFile.Read(login.PasswordFile, $"--login {login.Host} password"); // fail early if unreadable
            perHost[login.Host] = new ExplicitCredentialProvider(login.Username, null, login.PasswordFile);
        }
        return perHost.Count == 0 ? fallback : new PerHostCredentialProvider(perHost, fallback);
    }
}
