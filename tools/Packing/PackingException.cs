using ModelCar.Common;

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
}

/// <summary>A failure of the ModelCar packing domain (never names a CLI flag; <see cref="ModelCarException.Reason"/> is a <see cref="PackingReason"/> where one applies).</summary>
public class PackingException(string message, Exception? inner = null, bool transient = false, PackingReason? reason = null)
    : ModelCarException(message, inner, transient, reason)
{
}

/// <summary>A value the caller passed (a platform list, hf://ORG/NAME[@REV], SOURCE_DATE_EPOCH) is malformed.</summary>
public sealed class PackingInputException(string message, Exception? inner = null) : PackingException(message, inner)
{
    public override bool IsInvalidInput => true;
}
