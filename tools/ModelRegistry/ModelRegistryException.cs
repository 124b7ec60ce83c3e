using ModelCar.Common;

namespace ModelCar.ModelRegistry;

/// <summary>Typed cases of Model Registry failures a caller can act on (the command adds which option to change).</summary>
public enum ModelRegistryReason
{
    /// <summary>The server refused the request and no token was sent.</summary>
    NoToken,

    /// <summary>The version already has a model artifact with another uri, and no update in place was asked for.</summary>
    ArtifactConflict,
}

/// <summary>A failure talking to the Model Registry (never names a CLI flag; <see cref="ModelCarException.Reason"/> is a <see cref="ModelRegistryReason"/> where one applies).</summary>
public class ModelRegistryException(string message, Exception? inner = null, bool transient = false, ModelRegistryReason? reason = null)
    : ModelCarException(message, inner, transient, reason)
{
}
