using Microsoft.Extensions.Logging;
using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.ModelRegistry;

namespace ModelCar.MrRegister;

/// <summary>
/// mr-register: `register` (idempotent find-or-create of model, version and artifact) and
/// `lookup` (the artifact uri of an existing version, for the deploy pipeline).
/// </summary>
public static class MrRegisterCommand
{
    /// <summary>The Tekton results this tool writes with --results-dir (the Tasks' contract test checks them).</summary>
    public static class Result
    {
        public const string RegisteredModelId = "registered-model-id";
        public const string ModelVersionId = "model-version-id";
        public const string ModelArtifactId = "model-artifact-id";
        public const string ModelUri = "model-uri";
    }

    public static IReadOnlyList<string> ResultNames { get; } = [Result.RegisteredModelId, Result.ModelVersionId, Result.ModelArtifactId, Result.ModelUri];

    public const string Name = "mr-register";

    /// <summary>The pod's service-account token, used when neither --token-file nor the env variable is given.</summary>
    public const string ServiceAccountTokenPath = ModelRegistryTokens.ServiceAccountTokenPath;
    public const string TokenPathVariable = ModelRegistryTokens.TokenPathVariable;

    // Shared by both subcommands (each gets its own instances: an option belongs to one parent).
    private sealed class Connection
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
            Description = $"File with the Bearer token (default: ${TokenPathVariable}, else {ServiceAccountTokenPath} if it exists).",
            HelpName = "FILE",
        };

        public Option<string[]> CaFile { get; } = CommonOptions.CaFile();
        public Option<bool> TlsVerify { get; } = CommonOptions.TlsVerify();
        public Option<int> MaxRetryWait { get; } = CommonOptions.MaxRetryWait();

        public void AddTo(Command c)
        {
            c.Options.Add(Server);
            c.Options.Add(TokenFile);
            c.Options.Add(CaFile);
            c.Options.Add(TlsVerify);
            c.Options.Add(MaxRetryWait);
        }
    }

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Register a model, version and artifact in the Kubeflow Model Registry, idempotently; or look up a version's artifact uri.");
        root.Subcommands.Add(CreateRegister());
        root.Subcommands.Add(CreateLookup());
        return root;
    }

    private static Option<string> RequiredText(string name, string description, string helpName) => new(name)
    {
        Description = description,
        HelpName = helpName,
        Required = true,
        Validators = { r => { if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string>())) { r.AddError($"{name} must not be empty"); } } },
    };

    /// <summary>
    /// A model or version name: required, and one the API can look up (printable ASCII, the spec's pattern for
    /// ?name= values); another is exit 2 before any request, naming the rule.
    /// </summary>
    private static Option<string> NameText(string name, string description)
    {
        var option = RequiredText(name, description, "NAME");
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { Length: > 0 } value && !string.IsNullOrWhiteSpace(value) && RegistryNames.Problem(name, value) is { } problem)
            {
                r.AddError(problem);
            }
        });
        return option;
    }

    private static Option<string?> Text(string name, string description, string helpName) => new(name) { Description = description, HelpName = helpName };

    private static Command CreateRegister()
    {
        var cmd = new Command("register", "Find or create the registered model and its version, then create (or check / --update) the version's model artifact.");
        var conn = new Connection();
        var modelName = NameText("--model-name", "Registered model name (matched exactly; printable ASCII).");
        var versionName = NameText("--version-name", "Model version name, unique within the model (matched exactly; printable ASCII).");
        var uri = RequiredText("--uri", "Artifact uri, e.g. oci://quay.io/org/model:tag (the InferenceService storageUri).", "URI");
        var formatName = Text("--model-format-name", "Model format name (selects the serving runtime), e.g. vLLM.", "N");
        var formatVersion = Text("--model-format-version", "Model format version.", "V");
        var storageKey = Text("--storage-key", "Storage connection (secret) name.", "K");
        var storagePath = Text("--storage-path", "Path within the storage connection.", "P");
        var author = Text("--author", "Model version author (set when the version is created).", "A");
        var owner = Text("--owner", "Registered model owner (set when the model is created).", "O");
        var description = Text("--description", "Registered model description (set when the model is created).", "D");
        var versionDescription = Text("--version-description", "Model version description (set when the version is created).", "D");
        var property = new Option<string[]>("--property")
        {
            Description = "Artifact custom property (repeatable): KEY=VALUE (string), KEY:int=5, KEY:double=1.5, KEY:bool=true.",
            HelpName = "KEY=VALUE",
            DefaultValueFactory = _ => [],
        };
        var hfRepo = Text("--hf-repo", "Provenance: the Hugging Face repo the model came from (artifact property hf-repo).", "ORG/NAME");
        var hfCommit = Text("--hf-commit", "Provenance: its commit (artifact property hf-commit).", "SHA");
        var imageDigest = Text("--image-digest", "Provenance: the image's digest, sha256:… (artifact property image-digest; oci-pack's IMAGE_DIGEST).", "DIGEST");
        var imageSize = Text("--image-size", "The image's size in bytes (artifact property image-size; oci-pack's IMAGE_SIZE).", "BYTES");
        var platforms = Text("--platforms", "The image's platforms, comma-separated, e.g. linux/amd64,linux/arm64 (artifact property platforms).", "LIST");
        var modelFilesDigest = Text("--model-files-digest", "Provenance: sha256 of the model's file listing, sha256:… (artifact property model-files-digest; oci-pack's / registry-push's MODEL_FILES_DIGEST): registry-push verify checks the attested files against it.", "DIGEST");
        var signatureDigests = Text("--signature-digests", "The cosign signature manifests (sha256-HEX.sig) pushed, comma-separated sha256:… (artifact property signature-digests; SIGNATURE_DIGESTS).", "LIST");
        var attestationDigests = Text("--attestation-digests", "The cosign attestation manifests (sha256-HEX.att) pushed, comma-separated sha256:… (artifact property attestation-digests; ATTESTATION_DIGESTS).", "LIST");
        var versionPattern = Text("--version-pattern", "Regex the whole version name must match, checked before any request (exit 2 if not).", "REGEX");
        var update = new Option<bool>("--update") { Description = "Update the existing artifact in place when its uri or fields differ (otherwise a different uri is an error)." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Send only reads; print each write it would send (METHOD PATH BODY) on stdout instead." };

        conn.AddTo(cmd);
        foreach (var o in new Option[] { modelName, versionName, uri, formatName, formatVersion, storageKey, storagePath, author, owner, description, versionDescription, property, hfRepo, hfCommit, imageDigest, imageSize, platforms, modelFilesDigest, signatureDigests, attestationDigests, versionPattern, update, dryRun })
        {
            cmd.Options.Add(o);
        }

        cmd.SetToolAction(Name, [Hints], async (ctx, ct) =>
        {
            var request = new RegistrationRequest
            {
                ModelName = ctx.Get(modelName)!,
                VersionName = ctx.Get(versionName)!,
                Uri = ctx.Get(uri)!,
                ModelFormatName = Optional(ctx.Get(formatName)),
                ModelFormatVersion = Optional(ctx.Get(formatVersion)),
                StorageKey = Optional(ctx.Get(storageKey)),
                StoragePath = Optional(ctx.Get(storagePath)),
                Author = Optional(ctx.Get(author)),
                Owner = Optional(ctx.Get(owner)),
                ModelDescription = Optional(ctx.Get(description)),
                VersionDescription = Optional(ctx.Get(versionDescription)),
                Properties = WithProvenance(ParseProperties(ctx.Get(property) ?? []), Optional(ctx.Get(hfRepo)), Optional(ctx.Get(hfCommit)),
                    Optional(ctx.Get(imageDigest)), Optional(ctx.Get(imageSize)), Optional(ctx.Get(platforms)),
                    new SigningRecord(Optional(ctx.Get(modelFilesDigest)), Optional(ctx.Get(signatureDigests)), Optional(ctx.Get(attestationDigests)))),
                Update = ctx.Get(update),
            };
            CheckVersionPattern(request.VersionName, ctx.Get(versionPattern));

            bool dry = ctx.Get(dryRun);
            using var client = CreateClient(ctx, conn, dry);
            if (dry)
            {
                client.DryRun = line => ctx.WriteResult(line);
            }
            var result = await new Registrar(client, ctx.Logger).RegisterAsync(request, ct);
            if (result.ArtifactLeftDifferent)
            {
                ctx.Logger.LogWarning("model artifact {Id} has the same uri but other fields differ; left unchanged (pass --update to update it)", result.ModelArtifactId);
            }
            if (dry)
            {
                ctx.Logger.LogInformation("dry run: {Count} write(s) not sent", result.Writes);
                return ExitCodes.Ok;
            }
            ctx.WriteResult($"registered-model-id={result.RegisteredModelId}");
            ctx.WriteResult($"model-version-id={result.ModelVersionId}");
            ctx.WriteResult($"model-artifact-id={result.ModelArtifactId}");
            WriteResults(ctx, result.RegisteredModelId, result.ModelVersionId, result.ModelArtifactId, result.Uri);
            ctx.Logger.LogInformation("registered '{Model}' version '{Version}': {Writes} write(s)", request.ModelName, request.VersionName, result.Writes);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>Which option to change for a Model Registry failure (the library names none).</summary>
    public static string? Hints(Exception e) => ModelCar.Common.Cli.Hints.Join(
        ModelCar.Common.Cli.Hints.For(e, ModelRegistryReason.NoToken, "or give one with --token-file"),
        ModelCar.Common.Cli.Hints.For(e, ModelRegistryReason.ArtifactConflict, "pass --update to replace it in place"));

    private static Command CreateLookup()
    {
        var cmd = new Command("lookup", "Print the uri of the first model artifact of an existing model version (exit 1 if the model or version does not exist).");
        var conn = new Connection();
        var modelName = NameText("--model-name", "Registered model name (matched exactly; printable ASCII).");
        var versionName = NameText("--version-name", "Model version name (matched exactly; printable ASCII).");
        var output = new Option<string>("--output")
        {
            Description = "text: the uri alone (default); json: uri, ids, names and the artifact's and version's custom properties.",
            HelpName = "text|json",
            DefaultValueFactory = _ => "text",
        };
        output.AcceptOnlyFromAmong("text", "json");
        conn.AddTo(cmd);
        cmd.Options.Add(modelName);
        cmd.Options.Add(versionName);
        cmd.Options.Add(output);
        cmd.SetToolAction(Name, [Hints], async (ctx, ct) =>
        {
            using var client = CreateClient(ctx, conn);
            var (model, version, artifact) = await new Registrar(client, ctx.Logger).LookupAsync(ctx.Get(modelName)!, ctx.Get(versionName)!, ct);
            ctx.WriteResult(ctx.Get(output) == "json" ? LookupJson(model, version, artifact) : artifact.Uri!);
            WriteResults(ctx, model.Id, version.Id, artifact.Id, artifact.Uri!);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The artifact property keys of the typed provenance options.</summary>
    public static class ProvenanceKeys
    {
        public const string HfRepo = ModelCarProperties.HfRepo;
        public const string HfCommit = ModelCarProperties.HfCommit;
        public const string ImageDigest = ModelCarProperties.ImageDigest;
        public const string ImageSize = ModelCarProperties.ImageSize;
        public const string Platforms = ModelCarProperties.Platforms;
        public const string ModelFilesDigest = ModelCarProperties.ModelFilesDigest;
        public const string SignatureDigests = ModelCarProperties.SignatureDigests;
        public const string AttestationDigests = ModelCarProperties.AttestationDigests;
    }

    /// <summary>The signing side of a registration: the model file listing digest and the pushed signature and attestation manifests.</summary>
    public sealed record SigningRecord(string? ModelFilesDigest, string? SignatureDigests, string? AttestationDigests);

    private static readonly Regex Sha256Digest = new("^sha256:[0-9a-f]{64}$", RegexOptions.CultureInvariant);

    /// <summary>A comma-separated list of sha256 digests, normalized (no spaces, no empty items); null when empty.</summary>
    private static string? DigestList(string? list, string option)
    {
        if (list is null)
        {
            return null;
        }
        var items = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (items.FirstOrDefault(i => !Sha256Digest.IsMatch(i)) is { } bad)
        {
            throw new UsageException($"{option}: '{bad}' is not sha256:<64 hex digits> (give a comma-separated list)");
        }
        return items.Length == 0 ? null : string.Join(",", items);
    }

    /// <summary>
    /// Adds the typed provenance options to the --property map (string values: image-size can exceed
    /// the API's 9-digit int_value). A key also given with --property is a usage error.
    /// </summary>
    public static Dictionary<string, MetadataValue> WithProvenance(Dictionary<string, MetadataValue> properties, string? hfRepo, string? hfCommit, string? imageDigest, string? imageSize, string? platforms,
        SigningRecord? signing = null)
    {
        if (imageDigest is not null && !Sha256Digest.IsMatch(imageDigest))
        {
            throw new UsageException($"--image-digest '{imageDigest}' is not sha256:<64 hex digits>");
        }
        if (signing?.ModelFilesDigest is { } filesDigest && !Sha256Digest.IsMatch(filesDigest))
        {
            throw new UsageException($"--model-files-digest '{filesDigest}' is not sha256:<64 hex digits>");
        }
        var signatureList = DigestList(signing?.SignatureDigests, "--signature-digests");
        var attestationList = DigestList(signing?.AttestationDigests, "--attestation-digests");
        if (imageSize is not null && !(long.TryParse(imageSize, NumberStyles.None, CultureInfo.InvariantCulture, out long size) && size >= 0))
        {
            throw new UsageException($"--image-size '{imageSize}' is not a number of bytes");
        }
        string? platformList = null;
        if (platforms is not null)
        {
            var items = platforms.Split(',', StringSplitOptions.TrimEntries);
            if (items.Any(p => !Regex.IsMatch(p, "^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$", RegexOptions.CultureInvariant)))
            {
                throw new UsageException($"--platforms '{platforms}' is not a comma-separated list of OS/ARCH[/VARIANT]");
            }
            platformList = string.Join(",", items);
        }
        foreach (var (key, value, option) in new[]
        {
            (ProvenanceKeys.HfRepo, hfRepo, "--hf-repo"),
            (ProvenanceKeys.HfCommit, hfCommit, "--hf-commit"),
            (ProvenanceKeys.ImageDigest, imageDigest, "--image-digest"),
            (ProvenanceKeys.ImageSize, imageSize, "--image-size"),
            (ProvenanceKeys.Platforms, platformList, "--platforms"),
            (ProvenanceKeys.ModelFilesDigest, signing?.ModelFilesDigest, "--model-files-digest"),
            (ProvenanceKeys.SignatureDigests, signatureList, "--signature-digests"),
            (ProvenanceKeys.AttestationDigests, attestationList, "--attestation-digests"),
        })
        {
            if (value is null)
            {
                continue;
            }
            if (!properties.TryAdd(key, MetadataValue.Of(value)))
            {
                throw new UsageException($"{option} and --property '{key}' both set '{key}': give it once");
            }
        }
        return properties;
    }

    /// <summary>lookup --output json: one object (keys sorted within the property maps; values as the API's strings, numbers, booleans).</summary>
    public static string LookupJson(RegisteredModel model, ModelVersion version, ModelArtifact artifact)
    {
        using var buffer = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("uri", artifact.Uri);
            w.WriteString("registeredModelId", model.Id);
            w.WriteString("modelName", model.Name);
            w.WriteString("modelVersionId", version.Id);
            w.WriteString("versionName", version.Name);
            w.WriteString("modelArtifactId", artifact.Id);
            if (artifact.ModelFormatName is { } f)
            {
                w.WriteString("modelFormatName", f);
            }
            if (artifact.ModelFormatVersion is { } fv)
            {
                w.WriteString("modelFormatVersion", fv);
            }
            WriteProperties(w, "customProperties", artifact.CustomProperties);
            WriteProperties(w, "versionCustomProperties", version.CustomProperties);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteProperties(System.Text.Json.Utf8JsonWriter w, string name, Dictionary<string, MetadataValue>? properties)
    {
        w.WriteStartObject(name);
        foreach (var (key, value) in (properties ?? []).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            switch (value.MetadataType)
            {
                case MetadataValue.IntType when long.TryParse(value.IntValue, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long i):
                    w.WriteNumber(key, i);
                    break;
                case MetadataValue.DoubleType when value.DoubleValue is { } d:
                    w.WriteNumber(key, d);
                    break;
                case MetadataValue.BoolType when value.BoolValue is { } b:
                    w.WriteBoolean(key, b);
                    break;
                default:
                    w.WriteString(key, value.ToString());
                    break;
            }
        }
        w.WriteEndObject();
    }

    /// <summary>An empty optional value (a Tekton param defaulting to "") means "not given": the field is omitted.</summary>
    private static string? Optional(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static void WriteResults(ToolContext ctx, string modelId, string versionId, string artifactId, string uri)
    {
        ctx.Results.Write(Result.RegisteredModelId, modelId);
        ctx.Results.Write(Result.ModelVersionId, versionId);
        ctx.Results.Write(Result.ModelArtifactId, artifactId);
        ctx.Results.Write(Result.ModelUri, uri);
    }

    private static ModelRegistryClient CreateClient(ToolContext ctx, Connection conn, bool dryRun = false)
    {
        var settings = CommonOptions.HttpSettingsFrom(ctx.ParseResult, conn.TlsVerify, conn.CaFile, maxRetryWait: conn.MaxRetryWait);
        if (dryRun)
        {
            settings = settings with { MaxRetries = 1 }; // a preview: do not wait half a minute for a server that is not there
        }
        var server = ctx.Get(conn.Server)!;
        if (server.Scheme == "http" && settings.TlsVerify)
        {
            throw new UsageException($"--server '{server}' is plain http: pass --tls-verify=false to allow it");
        }
        var token = ResolveToken(ctx.Get(conn.TokenFile));
        if (token is null)
        {
            ctx.Logger.LogDebug("no token file: requests are sent without Authorization");
        }
        else
        {
            ctx.Logger.LogDebug("using the Bearer token from '{File}' ({How})", token.File, token.How);
        }
        var http = HttpClientFactory.Create(settings);
        var retry = HttpRetry.Create(settings, ctx.Logger);
        return new ModelRegistryClient(http, server, token, retry, ctx.Logger);
    }

    /// <summary>--token-file, else $KF_PIPELINES_SA_TOKEN_PATH, else the pod's service-account token if present.</summary>
    public static TokenSource? ResolveToken(string? tokenFile) => ModelRegistryTokens.Resolve(tokenFile, "--token-file");

    /// <summary>The whole version name must match (the pattern is anchored). Exit 2 otherwise.</summary>
    public static void CheckVersionPattern(string versionName, string? pattern)
    {
        if (string.IsNullOrEmpty(pattern))
        {
            return;
        }
        Regex regex;
        try
        {
            _ = new Regex(pattern, RegexOptions.CultureInvariant); // errors name the user's pattern, not the anchored one
            regex = new Regex($"^(?:{pattern})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--version-pattern '{pattern}' is not a valid regex: {e.Message}");
        }
        if (!regex.IsMatch(versionName))
        {
            throw new UsageException($"--version-name '{versionName}' does not match --version-pattern '{pattern}'");
        }
    }

    /// <summary>KEY=VALUE (string), KEY:int=5, KEY:double=1.5, KEY:bool=true|false. Bad input is exit 2.</summary>
    public static Dictionary<string, MetadataValue> ParseProperties(IEnumerable<string> specs)
    {
        var result = new Dictionary<string, MetadataValue>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            int eq = spec.IndexOf('=');
            if (eq <= 0)
            {
                throw new UsageException($"--property '{spec}' is not KEY=VALUE (or KEY:int=, KEY:double=, KEY:bool=)");
            }
            string key = spec[..eq];
            string value = spec[(eq + 1)..];
            string type = "string";
            int colon = key.LastIndexOf(':');
            if (colon > 0 && key[(colon + 1)..] is "string" or "int" or "double" or "bool")
            {
                type = key[(colon + 1)..];
                key = key[..colon];
            }
            if (key.Trim().Length == 0)
            {
                throw new UsageException($"--property '{spec}' has an empty key");
            }
            MetadataValue v = type switch
            {
                "int" => int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int i) && Math.Abs((long)i) <= 999_999_999
                    ? MetadataValue.Of(i) // the API's int_value pattern allows at most 9 digits
                    : throw new UsageException($"--property '{spec}': '{value}' is not an integer of at most 9 digits"),
                "double" => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
                    ? MetadataValue.Of(d)
                    : throw new UsageException($"--property '{spec}': '{value}' is not a finite number"),
                "bool" => value switch
                {
                    "true" => MetadataValue.Of(true),
                    "false" => MetadataValue.Of(false),
                    _ => throw new UsageException($"--property '{spec}': '{value}' is not true or false"),
                },
                _ => MetadataValue.Of(value),
            };
            if (!result.TryAdd(key, v))
            {
                throw new UsageException($"--property '{key}' is given twice");
            }
        }
        return result;
    }
}
