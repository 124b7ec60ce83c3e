using Microsoft.Extensions.Logging;
using ModelCar.Common;

namespace ModelCar.ModelRegistry;

/// <summary>What to register: one model, one version of it, one model artifact of that version.</summary>
public sealed record RegistrationRequest
{
    public required string ModelName { get; init; }
    public required string VersionName { get; init; }
    public required string Uri { get; init; }
    public string? ModelDescription { get; init; }
    public string? Owner { get; init; }
    public string? VersionDescription { get; init; }
    public string? Author { get; init; }
    public string? ModelFormatName { get; init; }
    public string? ModelFormatVersion { get; init; }
    public string? StorageKey { get; init; }
    public string? StoragePath { get; init; }
    public IReadOnlyDictionary<string, MetadataValue> Properties { get; init; } = new Dictionary<string, MetadataValue>();

    /// <summary>Update the existing artifact in place when its fields differ (otherwise a different uri is an error).</summary>
    public bool Update { get; init; }
}

/// <param name="ArtifactLeftDifferent">The existing artifact has the same uri but other fields differ, and it was left unchanged (no update asked for).</param>
public sealed record RegistrationResult(string RegisteredModelId, string ModelVersionId, string ModelArtifactId, string Uri, int Writes, bool ArtifactLeftDifferent = false);

/// <summary>
/// Idempotent registration: find-or-create the RegisteredModel, find-or-create the ModelVersion
/// under it, then create the ModelArtifact or reuse/update the existing first one. A duplicate
/// answer on create (409, or 500 with code "" from old servers) means another run won the race:
/// look it up again. Lookups never adopt a SQL LIKE look-alike; a 404 that may mean "several"
/// falls back to listing with an exact name filter.
/// </summary>
public sealed class Registrar(ModelRegistryClient client, ILogger logger)
{
    /// <summary>Placeholder id shown in dry-run bodies for an object that would be created first.</summary>
    public const string NewId = "NEW";

    private bool DryRun => client.DryRun is not null;

    /// <summary>Dry run only: the server could not be reached, so the plan assumes nothing exists.</summary>
    private bool _offline;

    /// <summary>The existing artifact was left as it is although other fields differ (<see cref="RegistrationResult.ArtifactLeftDifferent"/>).</summary>
    private bool _leftDifferent;

    public async Task<RegistrationResult> RegisterAsync(RegistrationRequest req, CancellationToken ct)
    {
        CheckNames(req.ModelName, req.VersionName);
        int writes = 0;

        // 1. registered model
        RegisteredModel? model = await FindModelAsync(req.ModelName, thorough: DryRun, ct);
        if (model is null)
        {
            var body = new RegisteredModelCreate { Name = req.ModelName, Description = req.ModelDescription, Owner = req.Owner };
            model = await client.CreateModelAsync(body, ct);
            writes++;
            if (model is not null)
            {
                ConfirmModel(model, req.ModelName, "the create");
                logger.LogInformation("created registered model '{Name}' (id {Id})", model.Name, model.Id);
            }
            else if (!DryRun)
            {
                model = await FindModelAsync(req.ModelName, thorough: true, ct)
                    ?? throw new ModelRegistryException($"registered model '{req.ModelName}': the server reported a duplicate on create, but no model with exactly that name can be found");
                writes--;
                logger.LogInformation("registered model '{Name}' already exists (id {Id}): found after the duplicate answer", model.Name, model.Id);
            }
        }
        else
        {
            logger.LogInformation("found registered model '{Name}' (id {Id})", model.Name, model.Id);
        }
        string modelId = model is null ? NewId : ConfirmModel(model, req.ModelName, "the lookup");

        // 2. model version, scoped to that model
        ModelVersion? version = model is null ? null : await FindVersionAsync(modelId, req.ModelName, req.VersionName, thorough: DryRun, ct);
        if (version is null)
        {
            var body = new ModelVersionCreate { Name = req.VersionName, RegisteredModelId = modelId, Description = req.VersionDescription, Author = req.Author };
            version = await client.CreateVersionAsync(body, ct);
            writes++;
            if (version is not null)
            {
                ConfirmVersion(version, req.VersionName, req.ModelName, modelId, "the create");
                logger.LogInformation("created model version '{Name}' (id {Id})", version.Name, version.Id);
            }
            else if (!DryRun)
            {
                version = await FindVersionAsync(modelId, req.ModelName, req.VersionName, thorough: true, ct)
                    ?? throw new ModelRegistryException($"model version '{req.VersionName}' of model '{req.ModelName}' (id {modelId}): the server reported a duplicate on create, but no version with exactly that name can be found");
                writes--;
                logger.LogInformation("model version '{Name}' already exists (id {Id}): found after the duplicate answer", version.Name, version.Id);
            }
        }
        else
        {
            logger.LogInformation("found model version '{Name}' (id {Id})", version.Name, version.Id);
        }
        string versionId = version is null ? NewId : RequireId(version.Id, $"model version '{req.VersionName}'");

        // 3. model artifact: the first one of the version is the one the deploy flow reads
        ModelArtifact? artifact = version is null ? null : await FirstArtifactAsync(versionId, ct);
        if (artifact is null)
        {
            artifact = await client.CreateArtifactAsync(versionId, NewArtifact(req), ct);
            writes++;
            if (artifact is not null)
            {
                logger.LogInformation("created model artifact '{Name}' (id {Id}) with uri {Uri}", artifact.Name, artifact.Id, artifact.Uri);
            }
            else if (!DryRun)
            {
                artifact = await FirstArtifactAsync(versionId, ct)
                    ?? throw new ModelRegistryException($"model version '{req.VersionName}' (id {versionId}): the server reported a duplicate model artifact on create, but the version lists none");
                writes--;
                logger.LogInformation("model artifact already exists (id {Id}): found after the duplicate answer", artifact.Id);
                artifact = await ReconcileAsync(req, versionId, artifact, ref writes, ct);
            }
        }
        else
        {
            artifact = await ReconcileAsync(req, versionId, artifact, ref writes, ct);
        }
        return new RegistrationResult(modelId, versionId, artifact is null ? NewId : RequireId(artifact.Id, $"the model artifact of version '{req.VersionName}'"),
            artifact?.Uri ?? req.Uri, writes, _leftDifferent);
    }

    /// <summary>Read-only: the first model artifact of an existing model version (for `lookup`).</summary>
    public async Task<(RegisteredModel Model, ModelVersion Version, ModelArtifact Artifact)> LookupAsync(string modelName, string versionName, CancellationToken ct)
    {
        CheckNames(modelName, versionName);
        var model = await FindModelAsync(modelName, thorough: true, ct)
            ?? throw new ModelRegistryException($"registered model '{modelName}' does not exist");
        var version = await FindVersionAsync(model.Id, modelName, versionName, thorough: true, ct)
            ?? throw new ModelRegistryException($"model version '{versionName}' of registered model '{modelName}' (id {model.Id}) does not exist");
        var artifact = await FirstArtifactAsync(version.Id, ct)
            ?? throw new ModelRegistryException($"model version '{versionName}' (id {version.Id}) of '{modelName}' has no model artifact");
        RequireId(artifact.Id, $"the model artifact of version '{versionName}'");
        if (string.IsNullOrEmpty(artifact.Uri))
        {
            throw new ModelRegistryException($"model artifact {artifact.Id} of version '{versionName}' (id {version.Id}) has no uri");
        }
        return (model, version, artifact);
    }

    /// <summary>
    /// The model with exactly this name, or null. A model found by name is read again by its id: the server must
    /// store that very model under that id (a lookup answering another model's id fails, naming both).
    /// </summary>
    private async Task<RegisteredModel?> FindModelAsync(string name, bool thorough, CancellationToken ct)
    {
        var found = await ReadAsync(async () =>
            await client.FindModelAsync(name, ct) ?? (thorough ? await client.FindModelByListingAsync(name, ct) : null));
        if (found is null)
        {
            return null;
        }
        var id = RequireId(found.Id, $"registered model '{name}'");
        var stored = await ReadAsync(() => client.GetModelAsync(id, ct));
        if (stored is null && _offline)
        {
            return found;
        }
        if (stored is null || stored.Name != name || stored.Id != id)
        {
            throw new ModelRegistryException($"registered model '{name}': the lookup by name answered id {id}, but the server holds "
                + (stored is null ? $"no registered model {id}" : $"registered model '{stored.Name}' (id {stored.Id}) there") + ": not the model asked for");
        }
        return found;
    }

    /// <summary>The version with exactly this name, checked to belong to <paramref name="modelId"/> (else one line naming both).</summary>
    private async Task<ModelVersion?> FindVersionAsync(string modelId, string modelName, string name, bool thorough, CancellationToken ct)
    {
        var found = await ReadAsync(async () =>
            await client.FindVersionAsync(modelId, name, ct) ?? (thorough ? await client.FindVersionByListingAsync(modelId, name, ct) : null));
        return found is null ? null : ConfirmVersion(found, name, modelName, modelId, "the lookup");
    }

    /// <summary>Names the API can look up (<see cref="RegistryNames.Pattern"/>); others are refused before any request.</summary>
    private static void CheckNames(string modelName, string versionName)
    {
        if ((RegistryNames.Problem("model name", modelName) ?? RegistryNames.Problem("version name", versionName)) is { } problem)
        {
            throw new ModelRegistryInputException(problem);
        }
    }

    /// <summary>An id the server sent: never null or empty (a null must not become the dry-run placeholder and reach the server).</summary>
    private static string RequireId(string? id, string what) => string.IsNullOrWhiteSpace(id)
        ? throw new ModelRegistryException($"the server answered {what} without an id (null or empty): refusing to go on")
        : id;

    /// <summary>The model the server answered is the one asked for (its name); returns its id.</summary>
    private static string ConfirmModel(RegisteredModel model, string name, string how)
    {
        var id = RequireId(model.Id, $"registered model '{name}'");
        if (model.Name != name)
        {
            throw new ModelRegistryException($"registered model '{name}': the server answered {how} with registered model '{model.Name}' (id {id}): not the model asked for");
        }
        return id;
    }

    /// <summary>The version the server answered is the one asked for: its name, and its parent is <paramref name="modelId"/>.</summary>
    private static ModelVersion ConfirmVersion(ModelVersion version, string name, string modelName, string modelId, string how)
    {
        var id = RequireId(version.Id, $"model version '{name}'");
        if (version.Name != name || version.RegisteredModelId != modelId)
        {
            throw new ModelRegistryException($"model version '{name}' of registered model '{modelName}' (id {modelId}): the server answered {how} with model version '{version.Name}' (id {id}) "
                + $"of registered model {(string.IsNullOrEmpty(version.RegisteredModelId) ? "(none given)" : "id " + version.RegisteredModelId)}: not the version asked for");
        }
        return version;
    }

    private async Task<ModelArtifact?> FirstArtifactAsync(string versionId, CancellationToken ct)
    {
        var first = await ReadAsync(async () => (await client.ListArtifactsAsync(versionId, ct)).FirstOrDefault());
        if (first is not null)
        {
            RequireId(first.Id, $"the first model artifact of model version {versionId}");
        }
        return first;
    }

    /// <summary>
    /// A lookup. In a dry run a server that cannot be reached at all (name resolution, connection
    /// refused) is not fatal: the plan continues as if nothing existed, with a warning.
    /// </summary>
    private async Task<T?> ReadAsync<T>(Func<Task<T?>> read) where T : class
    {
        if (_offline)
        {
            return null;
        }
        try
        {
            return await read();
        }
        catch (HttpRequestException e) when (DryRun && e.StatusCode is null
            && e.HttpRequestError is HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError)
        {
            logger.LogWarning("dry run: cannot reach the server ({Cause}); planning as if nothing is registered yet", ErrorText.Describe(e));
            _offline = true;
            return null;
        }
    }

    private Task<ModelArtifact?> ReconcileAsync(RegistrationRequest req, string versionId, ModelArtifact existing, ref int writes, CancellationToken ct)
    {
        var update = UpdateFor(req, existing);
        if (update is null)
        {
            logger.LogInformation("found model artifact '{Name}' (id {Id}) with uri {Uri}: up to date", existing.Name, existing.Id, existing.Uri);
            return Task.FromResult<ModelArtifact?>(existing);
        }
        if (!req.Update)
        {
            if (existing.Uri != req.Uri)
            {
                throw new ModelRegistryException($"model version '{req.VersionName}' (id {versionId}) already has model artifact {existing.Id} with uri '{existing.Uri}', not '{req.Uri}'", reason: ModelRegistryReason.ArtifactConflict);
            }
            _leftDifferent = true; // the caller says how to update it
            logger.LogDebug("model artifact {Id} has the same uri but other fields differ; left unchanged", existing.Id);
            return Task.FromResult<ModelArtifact?>(existing);
        }
        writes++;
        logger.LogInformation("updating model artifact {Id} in place (uri {Old} -> {New})", existing.Id, existing.Uri, req.Uri);
        return UpdateAsync(existing, update, ct);
    }

    private async Task<ModelArtifact?> UpdateAsync(ModelArtifact existing, ModelArtifactUpdate update, CancellationToken ct) =>
        await client.UpdateArtifactAsync(existing.Id, update, ct) ?? existing;

    private static ModelArtifactCreate NewArtifact(RegistrationRequest req) => new()
    {
        Name = req.ModelName, // fixed per version: two racing runs collide on it (409) instead of creating two artifacts
        Uri = req.Uri,
        ModelFormatName = req.ModelFormatName,
        ModelFormatVersion = req.ModelFormatVersion,
        StorageKey = req.StorageKey,
        StoragePath = req.StoragePath,
        CustomProperties = req.Properties.Count == 0 ? null : new Dictionary<string, MetadataValue>(req.Properties),
    };

    /// <summary>The PATCH body that brings the artifact to the request, or null if it already matches.</summary>
    public static ModelArtifactUpdate? UpdateFor(RegistrationRequest req, ModelArtifact a)
    {
        var update = new ModelArtifactUpdate();
        bool changed = false;
        string? Diff(string? wanted, string? current)
        {
            if (wanted is null || wanted == current)
            {
                return null;
            }
            changed = true;
            return wanted;
        }
        update.Uri = Diff(req.Uri, a.Uri);
        update.ModelFormatName = Diff(req.ModelFormatName, a.ModelFormatName);
        update.ModelFormatVersion = Diff(req.ModelFormatVersion, a.ModelFormatVersion);
        update.StorageKey = Diff(req.StorageKey, a.StorageKey);
        update.StoragePath = Diff(req.StoragePath, a.StoragePath);
        var current = a.CustomProperties ?? [];
        if (req.Properties.Any(p => !p.Value.SameAs(current.GetValueOrDefault(p.Key))))
        {
            // PATCH replaces the whole map: keep the properties others set, override ours.
            var merged = new Dictionary<string, MetadataValue>(current);
            foreach (var (k, v) in req.Properties)
            {
                merged[k] = v;
            }
            update.CustomProperties = merged;
            changed = true;
        }
        return changed ? update : null;
    }
}
