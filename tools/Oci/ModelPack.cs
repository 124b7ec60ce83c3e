using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace ModelCar.Oci;

/// <summary>
/// The CNCF ModelPack format (modelpack/model-spec v0.0.7: docs/spec.md, specs-go/v1/mediatype.go and
/// annotations.go, schema/config-schema.json): an OCI image manifest with this artifact type and config media
/// type, over layers of these media types. Plain types, no I/O.
/// </summary>
public static class ModelPackTypes
{
    public const string ArtifactType = "application/vnd.cncf.model.manifest.v1+json";
    public const string Config = "application/vnd.cncf.model.config.v1+json";
    public const string Weight = "application/vnd.cncf.model.weight.v1.tar";
    public const string WeightConfig = "application/vnd.cncf.model.weight.config.v1.tar";
    public const string Doc = "application/vnd.cncf.model.doc.v1.tar";
    public const string Code = "application/vnd.cncf.model.code.v1.tar";
    public const string Dataset = "application/vnd.cncf.model.dataset.v1.tar";

    /// <summary>A layer's file path (the tar entry's name), specs-go/v1/annotations.go AnnotationFilepath.</summary>
    public const string FilePath = "org.cncf.model.filepath";
}

/// <summary>ModelPack's config (schema/config-schema.json: descriptor, config, modelfs; no other property anywhere).</summary>
public sealed record ModelPackConfig
{
    [JsonPropertyName("descriptor")] public required ModelPackDescriptor Descriptor { get; init; }
    [JsonPropertyName("modelfs")] public required ModelPackFs ModelFs { get; init; }
    [JsonPropertyName("config")] public required ModelPackModelConfig Config { get; init; }
}

public sealed record ModelPackDescriptor
{
    [JsonPropertyName("family")] public string? Family { get; init; }
    [JsonPropertyName("name")] public string? Name { get; init; }
    [JsonPropertyName("sourceURL")] public string? SourceUrl { get; init; }
    [JsonPropertyName("revision")] public string? Revision { get; init; }
}

public sealed record ModelPackFs
{
    [JsonPropertyName("type")] public string Type { get; init; } = "layers";
    [JsonPropertyName("diffIds")] public required IReadOnlyList<Digest> DiffIds { get; init; }
}

public sealed record ModelPackModelConfig
{
    [JsonPropertyName("architecture")] public string? Architecture { get; init; }
    [JsonPropertyName("format")] public string? Format { get; init; }
    [JsonPropertyName("paramSize")] public string? ParamSize { get; init; }
    [JsonPropertyName("precision")] public string? Precision { get; init; }
    [JsonPropertyName("quantization")] public string? Quantization { get; init; }
}

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = false)]
[JsonSerializable(typeof(ModelPackConfig))]
internal sealed partial class ModelPackJsonContext : JsonSerializerContext;

public static class ModelPackJson
{
    private static JsonSerializerOptions Options { get; } = new(ModelPackJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = ModelPackJsonContext.Default,
    };

    public static JsonTypeInfo<ModelPackConfig> Config => (JsonTypeInfo<ModelPackConfig>)Options.GetTypeInfo(typeof(ModelPackConfig));
}
