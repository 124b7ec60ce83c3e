using ModelCar.Common;
using ModelCar.Common.IO;

namespace ModelCar.Packing;

/// <summary>Typed cases of packing failures a caller can act on (the command adds which option to change).</summary>
public enum PackingReason
{
    /// <summary>The include/exclude patterns leave no file of the model to pack.</summary>
    NoFileMatchesFilter,

    /// <summary>The base image does not have (or is not) the platform(s) asked for.</summary>
    PlatformMismatch,

    /// <summary>The manifest would be over the size registries accept: too many layers.</summary>
    ManifestTooLarge,

    /// <summary>The model does not fit in the layer budget (what the base leaves of it, under the blob size limit).</summary>
    LayerBudget,

    /// <summary>A model directory whose hf-fetch download has not finished.</summary>
    IncompleteDownload,

    /// <summary>A base image (platform) without /bin/sh, which KServe's modelcar container runs.</summary>
    BaseWithoutShell,

    /// <summary>No platform of the base image has /bin/sh.</summary>
    NoPlatformWithShell,

    /// <summary>The base image has an ENTRYPOINT that would swallow KServe's args.</summary>
    BaseEntrypoint,
}

/// <summary>A failure of the ModelCar packing domain (never names a CLI flag; <see cref="ModelCarException.Reason"/> is a <see cref="PackingReason"/> where one applies).</summary>
public class PackingException(string message, Exception? inner = null, bool transient = false, PackingReason? reason = null)
    : ModelCarException(message, inner, transient, reason)
{
}

/// <summary>A value the caller passed (a platform list, hf://ORG/NAME[@REV], SOURCE_DATE_EPOCH) is malformed.</summary>
public class PackingInputException(string message, Exception? inner = null) : PackingException(message, inner)
{
    public override bool IsInvalidInput => true;
}

/// <summary>The base image leaves no room for a model layer in the layer budget of the whole image.</summary>
public sealed class BaseOverLayerBudgetException(string baseImage, int baseLayers, int maxLayers)
    : PackingException($"base image {baseImage} has {baseLayers} layers, but the layer budget of {maxLayers} leaves room for at most {maxLayers - 1} beside the model")
{
    public string BaseImage { get; } = baseImage;
    public int BaseLayers { get; } = baseLayers;
    public int MaxLayers { get; } = maxLayers;
}

/// <summary>A blob is over the registries' maximum blob size: a base layer (<see cref="Blob"/>) or a planned model layer (<see cref="LayerTitle"/>).</summary>
public sealed class BlobOverLimitException(Oci.Descriptor? blob, string? layerTitle, long size, long limit)
    : PackingException($"{(layerTitle is not null ? $"layer {layerTitle} would be" : $"blob {blob?.Digest} is")} {SizeParser.Format(size)} ({size} bytes), over the maximum blob size {SizeParser.Format(limit)} ({limit} bytes): nothing was read or uploaded")
{
    public Oci.Descriptor? Blob { get; } = blob;
    public string? LayerTitle { get; } = layerTitle;
    public long Size { get; } = size;
    public long Limit { get; } = limit;
}

/// <summary>The directory given for the layer record cannot be written.</summary>
public sealed class LayerRecordDirectoryException(string directory, string why)
    : PackingException($"'{directory}': cannot write the layer record there: {why}")
{
    public string Directory { get; } = directory;
    public string Why { get; } = why;
}

/// <summary>Two outputs name the same place (<see cref="Text"/> is the second).</summary>
public sealed class SameOutputTwiceException(string text) : PackingInputException($"'{text}' names the same place as another output")
{
    public string Text { get; } = text;
}
