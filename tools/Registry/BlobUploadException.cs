using ModelCar.Common;

namespace ModelCar.Registry;

/// <summary>
/// A blob upload that failed for good, in one line naming the cause (never a CLI option: the
/// command adds which option to change). <see cref="ModelCarException.IsTransient"/>
/// tells the two kinds apart: true when the registry or the network kept failing temporarily (cuts,
/// 5xx, 429) until the recovery budget was spent, so a later run may well succeed; false when
/// retrying cannot help (the registry computed another digest, refused the request, or the source failed).
/// </summary>
public sealed class BlobUploadException(string message, bool transient, Exception? inner = null)
    : RegistryException(message, inner, transient)
{
    /// <summary>
    /// The one rule for "gave up after retries" of a blob upload (<see cref="RegistryBlobWriter"/>: one streamed
    /// PATCH or PATCH chunks): a transient <see cref="BlobUploadException"/> "WHAT; last error: …" (exit code 1, like
    /// every failure that is not bad usage; a later run may succeed unchanged).
    /// </summary>
    public static BlobUploadException GaveUp(string what, Exception lastError) =>
        new($"{what}; last error: {ErrorText.Describe(lastError)}", transient: true, lastError);
}
