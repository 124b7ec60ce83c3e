using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.Oci;
using ModelCar.Registry.Auth;

namespace ModelCar.Registry.Cli;

/// <summary>
/// The registry options of the commands that push (registry-push, oci-pack --output docker://):
/// credentials, TLS, parallelism, chunking, retries, the blob size limit — defined once, with the
/// mapping from their values to the library's types (credential provider, HTTP settings, upload
/// options). This is the commands' binding layer, not library logic: nothing in the Registry library
/// reads these options.
/// </summary>
public sealed class RegistryOptions(int defaultJobs = 4, int defaultRetries = 5)
{
    public Option<string[]> AuthFile { get; } = new("--authfile")
    {
        Description = "Credentials file: containers-auth.json / docker config.json ({\"auths\":…}) or legacy .dockercfg (repeatable: "
            + "merged in order, the first file with an entry for a host wins; a missing file is an error; default: $REGISTRY_AUTH_FILE, then the standard locations).",
        HelpName = "FILE",
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
    };

    public Option<string[]> Login { get; } = new("--login")
    {
        Description = "Credentials for one registry: HOST[:PORT]=USER:PASSWORD_FILE (repeatable); the file is read again after a 401 (rotated tokens). "
            + "Beats --creds/--username and the auth files for that host.",
        HelpName = "HOST=USER:FILE",
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
    };

    public Option<string?> Creds { get; } = new("--creds")
    {
        Description = "Credentials USER:PASSWORD for every registry not named by --login (prefer --username with --password-file).",
        HelpName = "USER[:PASS]",
    };

    public Option<string?> Username { get; } = new("--username") { Description = "User name (with --password-file) for every registry not named by --login.", HelpName = "USER" };

    public Option<string?> PasswordFile { get; } = new("--password-file")
    {
        Description = "File holding the password or token; read again after a 401 in the middle of a push (rotated tokens).",
        HelpName = "FILE",
    };

    public Option<long?> MaxBlobSize { get; } = CommonOptions.Size("--max-blob-size",
        "Refuse, before uploading anything, an image with a blob larger than SIZE (default: no limit; for a default quay, whose MAXIMUM_LAYER_SIZE 20G means 20000000000 bytes, pass 20000000000).");

    public Option<bool> TlsVerify { get; } = CommonOptions.TlsVerify();

    public Option<string[]> CaFile { get; } = CommonOptions.CaFile();

    public Option<int> Jobs { get; } = CommonOptions.Jobs(defaultJobs);

    public Option<int> Retries { get; } = CommonOptions.Retries(defaultRetries);

    public Option<long?> ChunkSize { get; } = CommonOptions.ChunkSize(
        "Upload blobs larger than SIZE in PATCH chunks of SIZE, at least 1M (default: monolithic, except blobs over 10 GiB which go in 1 GiB chunks).");

    public Option<int> StallTimeout { get; } = CommonOptions.StallTimeout();

    public Option<int> MaxRetryWait { get; } = CommonOptions.MaxRetryWait();

    /// <summary>All of them, in help order.</summary>
    public IEnumerable<Option> All => [AuthFile, Login, Creds, Username, PasswordFile, TlsVerify, CaFile, Jobs, ChunkSize, MaxBlobSize, Retries, StallTimeout, MaxRetryWait];

    /// <summary>
    /// Which option to change for a registry failure (<see cref="RegistryReason"/> anywhere in its
    /// chain), for <see cref="ToolApp.SetToolAction"/>: the library says what is wrong, this names the flag.
    /// </summary>
    public static string? Hints(Exception e) => Common.Cli.Hints.Join(
        Common.Cli.Hints.For(e, RegistryReason.MissingCredentials, "use --creds, --username/--password-file or --authfile"),
        Common.Cli.Hints.For(e, RegistryReason.Unauthorized, "check the credentials: --creds, --username/--password-file or --authfile"),
        Common.Cli.Hints.For(e, RegistryReason.BodyTooLarge, "set --chunk-size (e.g. 512M), or a smaller one"),
        Common.Cli.Hints.For(e, RegistryReason.UntrustedCertificate, "add the registry's CA with --ca-file, or use --tls-verify=false"),
        Common.Cli.Hints.For(e, RegistryReason.PlainHttpTokenRealm, "use --tls-verify=false to allow"));

    public HttpSettings HttpSettingsFrom(ToolContext ctx) => CommonOptions.HttpSettingsFrom(ctx.ParseResult, TlsVerify, CaFile, Retries, StallTimeout, MaxRetryWait);

    public UploadOptions UploadOptionsFrom(ToolContext ctx, HttpSettings settings) => new()
    {
        ChunkSize = ctx.Get(ChunkSize),
        MaxRecoveries = Math.Max(settings.MaxRetries, 1),
        RetryBaseDelay = settings.RetryBaseDelay,
    };

    /// <summary>Fails on the first blob over --max-blob-size (if given), naming its layer title (else its digest) and the limit.</summary>
    public void CheckBlobSizes(ToolContext ctx, IEnumerable<Descriptor> blobs)
    {
        if (ctx.Get(MaxBlobSize) is { } max)
        {
            CheckBlobSizes(blobs, max);
        }
    }

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

    /// <summary>Warns about --login hosts that match none of <paramref name="hosts"/>.</summary>
    public static void WarnUnusedLogins(ICredentialProvider credentials, IReadOnlyCollection<string> hosts, string destinationOption, ILogger logger)
    {
        if (credentials is PerHostCredentialProvider perHost)
        {
            foreach (var host in perHost.Hosts.Where(h => !hosts.Contains(h, StringComparer.OrdinalIgnoreCase)))
            {
                logger.LogWarning("--login {Host} matches no {Option} (hosts: {Hosts}): those credentials are not used", host, destinationOption, string.Join(", ", hosts.Distinct()));
            }
        }
    }

    /// <summary>
    /// Credentials per registry host: a --login for that host first; else --creds or
    /// --username/--password-file (every host) if given; else the auth files (--authfile in order,
    /// or $REGISTRY_AUTH_FILE, or the standard locations). --creds/--username cannot be combined
    /// with --authfile: one of the two would silently never be used for any host.
    /// Every file the user named is read once here, so a missing one fails before any request.
    /// </summary>
    public ICredentialProvider CredentialsFrom(ToolContext ctx)
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
