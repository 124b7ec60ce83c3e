using ModelCar.Common;

namespace ModelCar.Signing;

/// <summary>What went wrong with a key, a signature or an attestation (the commands map these to exit codes and hints).</summary>
public enum SigningFailure
{
    /// <summary>The key file is missing or unreadable.</summary>
    KeyFile,
    /// <summary>The encrypted key did not open: wrong password (or a damaged file).</summary>
    WrongPassword,
    /// <summary>The key is readable but not what we sign with (not EC P-256, not PKCS#8, unknown KDF parameters).</summary>
    UnsupportedKey,
    /// <summary>No signature (or attestation) for the digest.</summary>
    Unsigned,
    /// <summary>Signatures exist, none verifies with the given key.</summary>
    WrongKey,
    /// <summary>A signature verifies but its payload names another digest or repository, or is malformed.</summary>
    PayloadMismatch,
    /// <summary>No attestation, or none verifies.</summary>
    AttestationMissing,
    /// <summary>The attestation disagrees with what was expected (commit, file digests).</summary>
    AttestationMismatch,
    /// <summary>The release record to check against is malformed or contradicts itself.</summary>
    ReleaseRecord,
}

/// <summary>A signing or verification failure; one line, never the key, the password or the decrypted key.</summary>
public sealed class SigningException(string message, SigningFailure failure, Exception? inner = null)
    : ModelCarException(message, inner, transient: false, reason: failure)
{
    public SigningFailure Failure => failure;

    /// <summary>A key of the wrong kind is bad input (exit 2); a wrong password or missing file is a failure (exit 1).</summary>
    public override bool IsInvalidInput => failure == SigningFailure.UnsupportedKey;
}
