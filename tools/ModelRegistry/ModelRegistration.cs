using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Http;

namespace ModelCar.ModelRegistry;

/// <summary>
/// How to reach one Model Registry: its REST URL, the HTTP settings and where the Bearer token comes from
/// (<see cref="ModelRegistryTokens.Resolve"/>: <see cref="TokenFile"/>, else the environment, else the pod's token).
/// </summary>
/// <param name="TokenFileHow">How <see cref="TokenFile"/> was given, for the log and messages (the caller's words).</param>
public sealed record ModelRegistryConnection(Uri Server, HttpSettings Settings, string? TokenFile, string TokenFileHow)
{
    /// <summary>A client for the server (the token read now: a missing file fails before any request).</summary>
    public ModelRegistryClient Connect(ILogger logger)
    {
        var token = ModelRegistryTokens.Resolve(TokenFile, TokenFileHow);
        if (token is null)
        {
            logger.LogDebug("no token file: requests are sent without Authorization");
        }
        else
        {
            logger.LogDebug("using the Bearer token from '{File}' ({How})", token.File, token.How);
        }
        return new ModelRegistryClient(HttpClientFactory.Create(Settings), Server, token, HttpRetry.Create(Settings, logger), logger);
    }
}

/// <summary>The first model artifact of an existing model version, with the model and version it belongs to.</summary>
public sealed record ModelLookup(RegisteredModel Model, ModelVersion Version, ModelArtifact Artifact)
{
    /// <summary>Names the found record in messages: the model, the version and the artifact id.</summary>
    public string Where => $"the Model Registry's '{Model.Name}' version '{Version.Name}' (artifact {Artifact.Id})";

    /// <summary>One JSON object (keys sorted within the property maps; values as the API's strings, numbers, booleans).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("uri", Artifact.Uri);
            w.WriteString("registeredModelId", Model.Id);
            w.WriteString("modelName", Model.Name);
            w.WriteString("modelVersionId", Version.Id);
            w.WriteString("versionName", Version.Name);
            w.WriteString("modelArtifactId", Artifact.Id);
            if (Artifact.ModelFormatName is { } f)
            {
                w.WriteString("modelFormatName", f);
            }
            if (Artifact.ModelFormatVersion is { } fv)
            {
                w.WriteString("modelFormatVersion", fv);
            }
            WriteProperties(w, "customProperties", Artifact.CustomProperties);
            WriteProperties(w, "versionCustomProperties", Version.CustomProperties);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteProperties(Utf8JsonWriter w, string name, Dictionary<string, MetadataValue>? properties)
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
}

/// <summary>The library's entry points: register (idempotently) or look up, against one <see cref="ModelRegistryConnection"/>.</summary>
public static class ModelRegistration
{
    /// <summary>
    /// Registers <paramref name="request"/> (<see cref="Registrar.RegisterAsync"/>). With <paramref name="dryRun"/> only reads
    /// are sent (with one try each: a preview does not wait for a server that is not there) and each write goes to it instead.
    /// </summary>
    public static async Task<RegistrationResult> RegisterAsync(ModelRegistryConnection connection, RegistrationRequest request, Action<string>? dryRun, ILogger logger, CancellationToken ct)
    {
        if (dryRun is not null)
        {
            connection = connection with { Settings = connection.Settings with { MaxRetries = 1 } };
        }
        using var client = connection.Connect(logger);
        client.DryRun = dryRun;
        return await new Registrar(client, logger).RegisterAsync(request, ct).ConfigureAwait(false);
    }

    /// <summary>The first model artifact of an existing version (<see cref="Registrar.LookupAsync"/>): read-only.</summary>
    public static async Task<ModelLookup> LookupAsync(ModelRegistryConnection connection, string modelName, string versionName, ILogger logger, CancellationToken ct)
    {
        using var client = connection.Connect(logger);
        var (model, version, artifact) = await new Registrar(client, logger).LookupAsync(modelName, versionName, ct).ConfigureAwait(false);
        return new ModelLookup(model, version, artifact);
    }
}
