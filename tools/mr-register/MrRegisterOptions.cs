using System.CommandLine;
using ModelCar.Common.Cli;
using ModelCar.ModelRegistry;

namespace ModelCar.MrRegister;

/// <summary>The options shared by both subcommands: the server and how to reach it (each subcommand gets its own instances).</summary>
public sealed class ConnectionOptions
{
    public Option<Uri> Server { get; } = new("--server")
    {
        Description = "Model Registry REST URL, e.g. https://registry.rhoai-model-registries.svc:8443 (the /api/model_registry/v1alpha3 prefix is added).",
        HelpName = "URL",
        Required = true,
        CustomParser = r =>
        {
            var text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (System.Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0)
            {
                return uri;
            }
            r.AddError($"--server '{text}' is not an http(s) URL");
            return null;
        },
    };

    public Option<string?> TokenFile { get; } = new("--token-file")
    {
        Description = $"File with the Bearer token (default: ${ModelRegistryTokens.TokenPathVariable}, else {ModelRegistryTokens.ServiceAccountTokenPath} if it exists).",
        HelpName = "FILE",
    };

    public Option<string[]> CaFile { get; } = CommonOptions.CaFile();
    public Option<bool> TlsVerify { get; } = CommonOptions.TlsVerify();
    public Option<int> MaxRetryWait { get; } = CommonOptions.MaxRetryWait();

    public void AddTo(Command c)
    {
        foreach (var o in new Option[] { Server, TokenFile, CaFile, TlsVerify, MaxRetryWait })
        {
            c.Options.Add(o);
        }
    }

    /// <summary>The connection the options name; plain http only with --tls-verify=false (exit 2).</summary>
    public ModelRegistryConnection From(ToolContext ctx)
    {
        var settings = CommonOptions.HttpSettingsFrom(ctx.ParseResult, TlsVerify, CaFile, maxRetryWait: MaxRetryWait);
        var server = ctx.Get(Server)!;
        if (server.Scheme == "http" && settings.TlsVerify)
        {
            throw new UsageException($"--server '{server}' is plain http: pass --tls-verify=false to allow it");
        }
        return new ModelRegistryConnection(server, settings, ctx.Get(TokenFile), "--token-file");
    }
}

/// <summary>Model and version names: required, and ones the API can look up (printable ASCII); another is exit 2 before any request.</summary>
public static class NameOptions
{
    public static Option<string> Required(string name, string description, string helpName) => new(name)
    {
        Description = description,
        HelpName = helpName,
        Required = true,
        Validators = { r => { if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string>())) { r.AddError($"{name} must not be empty"); } } },
    };

    public static Option<string> Name(string name, string description)
    {
        var option = Required(name, description, "NAME");
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { Length: > 0 } value && !string.IsNullOrWhiteSpace(value) && RegistryNames.Problem(name, value) is { } problem)
            {
                r.AddError(problem);
            }
        });
        return option;
    }
}

/// <summary>`register`'s own options, and the <see cref="RegistrationInput"/> they give.</summary>
public sealed class RegisterOptions
{
    private static Option<string?> Text(string name, string description, string helpName) => new(name) { Description = description, HelpName = helpName };

    public Option<string> ModelName { get; } = NameOptions.Name("--model-name", "Registered model name (matched exactly; printable ASCII).");
    public Option<string> VersionName { get; } = NameOptions.Name("--version-name", "Model version name, unique within the model (matched exactly; printable ASCII).");
    public Option<string> Uri { get; } = NameOptions.Required("--uri", "Artifact uri, e.g. oci://quay.io/org/model:tag (the InferenceService storageUri).", "URI");
    public Option<string?> FormatName { get; } = Text("--model-format-name", "Model format name (selects the serving runtime), e.g. vLLM.", "N");
    public Option<string?> FormatVersion { get; } = Text("--model-format-version", "Model format version.", "V");
    public Option<string?> StorageKey { get; } = Text("--storage-key", "Storage connection (secret) name.", "K");
    public Option<string?> StoragePath { get; } = Text("--storage-path", "Path within the storage connection.", "P");
    public Option<string?> Author { get; } = Text("--author", "Model version author (set when the version is created).", "A");
    public Option<string?> Owner { get; } = Text("--owner", "Registered model owner (set when the model is created).", "O");
    public Option<string?> Description { get; } = Text("--description", "Registered model description (set when the model is created).", "D");
    public Option<string?> VersionDescription { get; } = Text("--version-description", "Model version description (set when the version is created).", "D");

    public Option<string[]> Property { get; } = new("--property")
    {
        Description = "Artifact custom property (repeatable): KEY=VALUE (string), KEY:int=5, KEY:double=1.5, KEY:bool=true.",
        HelpName = "KEY=VALUE",
        DefaultValueFactory = _ => [],
    };

    public Option<string?> HfRepo { get; } = Text("--hf-repo", "Provenance: the Hugging Face repo the model came from (artifact property hf-repo).", "ORG/NAME");
    public Option<string?> HfCommit { get; } = Text("--hf-commit", "Provenance: its commit (artifact property hf-commit).", "SHA");
    public Option<string?> ImageDigest { get; } = Text("--image-digest", "Provenance: the image's digest, sha256:… (artifact property image-digest; oci-pack's IMAGE_DIGEST).", "DIGEST");
    public Option<string?> ImageSize { get; } = Text("--image-size", "The image's size in bytes (artifact property image-size; oci-pack's IMAGE_SIZE).", "BYTES");
    public Option<string?> Platforms { get; } = Text("--platforms", "The image's platforms, comma-separated, e.g. linux/amd64,linux/arm64 (artifact property platforms).", "LIST");
    public Option<string?> ModelFilesDigest { get; } = Text("--model-files-digest", "Provenance: sha256 of the model's file listing, sha256:… (artifact property model-files-digest; oci-pack's / registry-push's MODEL_FILES_DIGEST): registry-push verify checks the attested files against it.", "DIGEST");
    public Option<string?> SignatureDigests { get; } = Text("--signature-digests", "The cosign signature manifests (sha256-HEX.sig) pushed, comma-separated sha256:… (artifact property signature-digests; SIGNATURE_DIGESTS).", "LIST");
    public Option<string?> AttestationDigests { get; } = Text("--attestation-digests", "The cosign attestation manifests (sha256-HEX.att) pushed, comma-separated sha256:… (artifact property attestation-digests; ATTESTATION_DIGESTS).", "LIST");
    public Option<string?> VersionPattern { get; } = Text("--version-pattern", "Regex the whole version name must match, checked before any request (exit 2 if not).", "REGEX");
    public Option<bool> Update { get; } = new("--update") { Description = "Update the existing artifact in place when its uri or fields differ (otherwise a different uri is an error)." };
    public Option<bool> DryRun { get; } = new("--dry-run") { Description = "Send only reads; print each write it would send (METHOD PATH BODY) on stdout instead." };

    public IEnumerable<Option> All => [ModelName, VersionName, Uri, FormatName, FormatVersion, StorageKey, StoragePath, Author, Owner, Description, VersionDescription,
        Property, HfRepo, HfCommit, ImageDigest, ImageSize, Platforms, ModelFilesDigest, SignatureDigests, AttestationDigests, VersionPattern, Update, DryRun];

    /// <summary>The option that gives each registration value (the library's messages name the value, the command its option).</summary>
    public static string Flag(RegistrationField field) => field switch
    {
        RegistrationField.VersionName => "--version-name",
        RegistrationField.VersionPattern => "--version-pattern",
        RegistrationField.Property => "--property",
        RegistrationField.HfRepo => "--hf-repo",
        RegistrationField.HfCommit => "--hf-commit",
        RegistrationField.ImageDigest => "--image-digest",
        RegistrationField.ImageSize => "--image-size",
        RegistrationField.Platforms => "--platforms",
        RegistrationField.ModelFilesDigest => "--model-files-digest",
        RegistrationField.SignatureDigests => "--signature-digests",
        RegistrationField.AttestationDigests => "--attestation-digests",
        _ => RegistrationInputException.DomainName(field),
    };

    /// <summary>The request the options give, every value checked before any request (exit 2 naming the option otherwise).</summary>
    public RegistrationRequest RequestFrom(ToolContext ctx)
    {
        var input = new RegistrationInput
        {
            ModelName = ctx.Get(ModelName)!,
            VersionName = ctx.Get(VersionName)!,
            Uri = ctx.Get(Uri)!,
            ModelFormatName = ctx.Get(FormatName),
            ModelFormatVersion = ctx.Get(FormatVersion),
            StorageKey = ctx.Get(StorageKey),
            StoragePath = ctx.Get(StoragePath),
            Author = ctx.Get(Author),
            Owner = ctx.Get(Owner),
            ModelDescription = ctx.Get(Description),
            VersionDescription = ctx.Get(VersionDescription),
            Properties = ctx.Get(Property) ?? [],
            Provenance = new Provenance
            {
                HfRepo = ctx.Get(HfRepo),
                HfCommit = ctx.Get(HfCommit),
                ImageDigest = ctx.Get(ImageDigest),
                ImageSize = ctx.Get(ImageSize),
                Platforms = ctx.Get(Platforms),
                ModelFilesDigest = ctx.Get(ModelFilesDigest),
                SignatureDigests = ctx.Get(SignatureDigests),
                AttestationDigests = ctx.Get(AttestationDigests),
            },
            VersionPattern = ctx.Get(VersionPattern),
            Update = ctx.Get(Update),
        };
        try
        {
            return input.ToRequest();
        }
        catch (RegistrationInputException e)
        {
            throw new UsageException(e.Render(Flag), e);
        }
    }
}
