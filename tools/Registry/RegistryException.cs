using ModelCar.Common;

namespace ModelCar.Registry;

/// <summary>Typed cases of registry failures a caller can act on (the command adds which option to change).</summary>
public enum RegistryReason
{
    /// <summary>The registry answered 401: the credentials sent were refused, or none were sent where some are needed.</summary>
    Unauthorized,

    /// <summary>The registry (or its token service) wants credentials and none were found for it.</summary>
    MissingCredentials,

    /// <summary>The registry refuses a request body this large (413): smaller chunks are needed.</summary>
    BodyTooLarge,

    /// <summary>The registry's TLS certificate could not be verified against the trusted roots.</summary>
    UntrustedCertificate,

    /// <summary>The registry sends to a plain-http token realm, where credentials would travel unencrypted.</summary>
    PlainHttpTokenRealm,
}

/// <summary>A failure talking to a registry (never names a CLI flag; <see cref="ModelCarException.Reason"/> is a <see cref="RegistryReason"/> where one applies).</summary>
public class RegistryException(string message, Exception? inner = null, bool transient = false, RegistryReason? reason = null)
    : ModelCarException(message, inner, transient, reason)
{
}

/// <summary>What the caller asked for contradicts the image or the registry (e.g. a destination pinned to another digest).</summary>
public sealed class RegistryInputException(string message) : RegistryException(message)
{
    public override bool IsInvalidInput => true;
}
