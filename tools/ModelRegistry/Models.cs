using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelCar.ModelRegistry;

/// <summary>
/// A customProperties value: <c>{"metadataType":"MetadataStringValue","string_value":"x"}</c>.
/// Exactly one <c>*_value</c> is set; int_value is a string on the wire (int32 as text).
/// Fields this client does not model (proto "type") round-trip through <see cref="Extra"/>.
/// </summary>
public sealed class MetadataValue
{
    public const string StringType = "MetadataStringValue";
    public const string IntType = "MetadataIntValue";
    public const string DoubleType = "MetadataDoubleValue";
    public const string BoolType = "MetadataBoolValue";

    [JsonPropertyName("metadataType")]
    public string MetadataType { get; set; } = StringType;

    [JsonPropertyName("string_value")]
    public string? StringValue { get; set; }

    [JsonPropertyName("int_value")]
    public string? IntValue { get; set; }

    [JsonPropertyName("double_value")]
    public double? DoubleValue { get; set; }

    [JsonPropertyName("bool_value")]
    public bool? BoolValue { get; set; }

    [JsonPropertyName("struct_value")]
    public string? StructValue { get; set; }

    [JsonPropertyName("proto_value")]
    public string? ProtoValue { get; set; }

    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; set; }

    public static MetadataValue Of(string value) => new() { MetadataType = StringType, StringValue = value };

    public static MetadataValue Of(int value) => new() { MetadataType = IntType, IntValue = value.ToString(CultureInfo.InvariantCulture) };

    public static MetadataValue Of(double value) => new() { MetadataType = DoubleType, DoubleValue = value };

    public static MetadataValue Of(bool value) => new() { MetadataType = BoolType, BoolValue = value };

    /// <summary>Same type and value (what decides whether an update is needed).</summary>
    public bool SameAs(MetadataValue? other) => other is not null
        && other.MetadataType == MetadataType && other.StringValue == StringValue && other.IntValue == IntValue
        && Nullable.Equals(other.DoubleValue, DoubleValue) && other.BoolValue == BoolValue
        && other.StructValue == StructValue && other.ProtoValue == ProtoValue;

    public override string ToString() => MetadataType switch
    {
        StringType => StringValue ?? "",
        IntType => IntValue ?? "",
        DoubleType => DoubleValue?.ToString("R", CultureInfo.InvariantCulture) ?? "",
        BoolType => BoolValue is true ? "true" : "false",
        _ => MetadataType,
    };
}

/// <summary>The error body of every non-2xx JSON answer: <c>{"code":"Not Found","message":"…"}</c>.</summary>
public sealed class ErrorBody
{
    [JsonPropertyName("code")]
    public string? Code { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }
}

/// <summary>Paged list: <c>{items, nextPageToken, pageSize, size}</c>; nextPageToken "" on the last page.</summary>
public sealed class ListPage<T>
{
    [JsonPropertyName("items")]
    public List<T>? Items { get; set; }

    [JsonPropertyName("nextPageToken")]
    public string? NextPageToken { get; set; }

    [JsonPropertyName("pageSize")]
    public int? PageSize { get; set; }

    [JsonPropertyName("size")]
    public int? Size { get; set; }
}

// ---- RegisteredModel -------------------------------------------------------------------------

/// <summary>RegisteredModel as the server returns it (read side: unknown newer fields are ignored).</summary>
public sealed class RegisteredModel
{
    [JsonPropertyName("id")] public string Id { get; set; } = "";
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("owner")] public string? Owner { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
    [JsonPropertyName("createTimeSinceEpoch")] public string? CreateTimeSinceEpoch { get; set; }
    [JsonPropertyName("lastUpdateTimeSinceEpoch")] public string? LastUpdateTimeSinceEpoch { get; set; }
}

/// <summary>POST /registered_models body (RegisteredModelCreate): name required, the rest optional.</summary>
public sealed class RegisteredModelCreate
{
    [JsonPropertyName("name")] public required string Name { get; set; }
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("owner")] public string? Owner { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
}

/// <summary>PATCH /registered_models/{id} body (RegisteredModelUpdate): no id, name or timestamps.</summary>
public sealed class RegisteredModelUpdate
{
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("owner")] public string? Owner { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
}

// ---- ModelVersion ----------------------------------------------------------------------------

public sealed class ModelVersion
{
    [JsonPropertyName("id")] public string Id { get; set; } = "";
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("registeredModelId")] public string? RegisteredModelId { get; set; }
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("author")] public string? Author { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
    [JsonPropertyName("createTimeSinceEpoch")] public string? CreateTimeSinceEpoch { get; set; }
    [JsonPropertyName("lastUpdateTimeSinceEpoch")] public string? LastUpdateTimeSinceEpoch { get; set; }
}

/// <summary>POST /model_versions body (ModelVersionCreate): name and registeredModelId required.</summary>
public sealed class ModelVersionCreate
{
    [JsonPropertyName("name")] public required string Name { get; set; }
    [JsonPropertyName("registeredModelId")] public required string RegisteredModelId { get; set; }
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("author")] public string? Author { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
}

/// <summary>PATCH /model_versions/{id} body (ModelVersionUpdate): no name, registeredModelId, id.</summary>
public sealed class ModelVersionUpdate
{
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("author")] public string? Author { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
}

// ---- ModelArtifact ---------------------------------------------------------------------------

public sealed class ModelArtifact
{
    public const string Type = "model-artifact";

    [JsonPropertyName("id")] public string Id { get; set; } = "";
    [JsonPropertyName("artifactType")] public string? ArtifactType { get; set; }
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("uri")] public string? Uri { get; set; }
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("modelFormatName")] public string? ModelFormatName { get; set; }
    [JsonPropertyName("modelFormatVersion")] public string? ModelFormatVersion { get; set; }
    [JsonPropertyName("storageKey")] public string? StorageKey { get; set; }
    [JsonPropertyName("storagePath")] public string? StoragePath { get; set; }
    [JsonPropertyName("serviceAccountName")] public string? ServiceAccountName { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
    [JsonPropertyName("createTimeSinceEpoch")] public string? CreateTimeSinceEpoch { get; set; }
    [JsonPropertyName("lastUpdateTimeSinceEpoch")] public string? LastUpdateTimeSinceEpoch { get; set; }
}

/// <summary>
/// POST /model_versions/{id}/artifacts body for a new artifact (ModelArtifactCreate with the
/// artifactType discriminator). No id: the server creates it (201).
/// </summary>
public sealed class ModelArtifactCreate
{
    [JsonPropertyName("artifactType")] public string ArtifactType { get; set; } = ModelArtifact.Type;
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("uri")] public string? Uri { get; set; }
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("modelFormatName")] public string? ModelFormatName { get; set; }
    [JsonPropertyName("modelFormatVersion")] public string? ModelFormatVersion { get; set; }
    [JsonPropertyName("storageKey")] public string? StorageKey { get; set; }
    [JsonPropertyName("storagePath")] public string? StoragePath { get; set; }
    [JsonPropertyName("serviceAccountName")] public string? ServiceAccountName { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
}

/// <summary>PATCH /model_artifacts/{id} body (ModelArtifactUpdate): no id, name or timestamps.</summary>
public sealed class ModelArtifactUpdate
{
    [JsonPropertyName("artifactType")] public string ArtifactType { get; set; } = ModelArtifact.Type;
    [JsonPropertyName("uri")] public string? Uri { get; set; }
    [JsonPropertyName("description")] public string? Description { get; set; }
    [JsonPropertyName("modelFormatName")] public string? ModelFormatName { get; set; }
    [JsonPropertyName("modelFormatVersion")] public string? ModelFormatVersion { get; set; }
    [JsonPropertyName("storageKey")] public string? StorageKey { get; set; }
    [JsonPropertyName("storagePath")] public string? StoragePath { get; set; }
    [JsonPropertyName("serviceAccountName")] public string? ServiceAccountName { get; set; }
    [JsonPropertyName("externalId")] public string? ExternalId { get; set; }
    [JsonPropertyName("state")] public string? State { get; set; }
    [JsonPropertyName("customProperties")] public Dictionary<string, MetadataValue>? CustomProperties { get; set; }
}

/// <summary>Source-generated JSON for the Model Registry API: unset optional fields are omitted (never null).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(RegisteredModel))]
[JsonSerializable(typeof(RegisteredModelCreate))]
[JsonSerializable(typeof(RegisteredModelUpdate))]
[JsonSerializable(typeof(ListPage<RegisteredModel>))]
[JsonSerializable(typeof(ModelVersion))]
[JsonSerializable(typeof(ModelVersionCreate))]
[JsonSerializable(typeof(ModelVersionUpdate))]
[JsonSerializable(typeof(ListPage<ModelVersion>))]
[JsonSerializable(typeof(ModelArtifact))]
[JsonSerializable(typeof(ModelArtifactCreate))]
[JsonSerializable(typeof(ModelArtifactUpdate))]
[JsonSerializable(typeof(ListPage<ModelArtifact>))]
public sealed partial class ModelRegistryJson : JsonSerializerContext;
