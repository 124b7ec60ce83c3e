using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace ModelCar.Oci;

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = false)]
[JsonSerializable(typeof(ImageManifest))]
[JsonSerializable(typeof(ImageIndex))]
[JsonSerializable(typeof(ImageConfig))]
[JsonSerializable(typeof(Descriptor))]
[JsonSerializable(typeof(OciLayoutMarker))]
[JsonSerializable(typeof(ManifestProbe))]
internal sealed partial class OciJsonContext : JsonSerializerContext;

/// <summary>
/// Canonical JSON for OCI documents: compact, declared property order, nulls omitted, and Go's
/// "relaxed" escaping: '+' and non-ASCII stay literal as in Go (System.Text.Json's default encoder would
/// write \u002B, giving digests no other tool reproduces). Source-generated: Native-AOT safe.
/// </summary>
public static class OciJson
{
    public static JsonSerializerOptions Options { get; } = new(OciJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = OciJsonContext.Default,
    };

    public const int MaxManifestBytes = 4 * 1024 * 1024;

    public static JsonTypeInfo<ImageManifest> Manifest => (JsonTypeInfo<ImageManifest>)Options.GetTypeInfo(typeof(ImageManifest));
    public static JsonTypeInfo<ImageIndex> Index => (JsonTypeInfo<ImageIndex>)Options.GetTypeInfo(typeof(ImageIndex));
    public static JsonTypeInfo<ImageConfig> Config => (JsonTypeInfo<ImageConfig>)Options.GetTypeInfo(typeof(ImageConfig));
    public static JsonTypeInfo<OciLayoutMarker> LayoutMarker => (JsonTypeInfo<OciLayoutMarker>)Options.GetTypeInfo(typeof(OciLayoutMarker));
    public static JsonTypeInfo<ManifestProbe> Probe => (JsonTypeInfo<ManifestProbe>)Options.GetTypeInfo(typeof(ManifestProbe));

    public static byte[] Serialize<T>(T value, JsonTypeInfo<T> info) => JsonSerializer.SerializeToUtf8Bytes(value, info);

    public static T Deserialize<T>(ReadOnlySpan<byte> json, JsonTypeInfo<T> info, string what)
    {
        try
        {
            return JsonSerializer.Deserialize(json, info) ?? throw new InvalidDataException($"{what} is JSON null");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{what} is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>The media type of a manifest or index document: its mediaType field, else guessed from its shape.</summary>
    public static string DetectMediaType(ReadOnlySpan<byte> json)
    {
        var probe = Deserialize(json, Probe, "manifest");
        if (!string.IsNullOrEmpty(probe.MediaType))
        {
            return probe.MediaType;
        }
        return probe.Manifests is not null ? MediaTypes.ImageIndex : MediaTypes.ImageManifest;
    }
}
