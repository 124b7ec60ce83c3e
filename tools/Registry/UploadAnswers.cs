using System.Net;
using ModelCar.Common.Http;

namespace ModelCar.Registry;

/// <summary>What an answer to an upload request means for the loop that sends the blob.</summary>
internal enum UploadOutcome
{
    /// <summary>The bytes (PATCH) or the blob (PUT) are stored.</summary>
    Stored,

    /// <summary>The registry dropped the session (404 BLOB_UPLOAD_INVALID/UNKNOWN): start the blob again.</summary>
    SessionDead,

    /// <summary>Temporary (5xx, 408, 429; 416 for a PATCH): wait, ask the session for its Range, go on.</summary>
    Retry,

    /// <summary>Anything else: retrying cannot help.</summary>
    Refused,
}

/// <summary>
/// The one rule for answers to upload requests, shared by <see cref="BlobUploader"/> (registry-push)
/// and <see cref="RegistryBlobWriter"/> (oci-pack's one pass). The response is not disposed.
/// </summary>
internal static class UploadAnswers
{
    /// <summary>
    /// Classifies an answer to a <c>PATCH</c> (<paramref name="patch"/>) or the closing <c>PUT</c>. For
    /// <see cref="UploadOutcome.SessionDead"/> and <see cref="UploadOutcome.Retry"/> it also gives the error to
    /// report and the delay the server asked for (<see cref="HttpRetry.CheckServerDelay"/>: a wait beyond
    /// <paramref name="maxRetryWait"/> throws <see cref="RetryWaitTooLongException"/>).
    /// </summary>
    public static async Task<(UploadOutcome Outcome, Exception? Error, TimeSpan? Delay)> ClassifyAsync(HttpResponseMessage response, bool patch,
        TimeSpan maxRetryWait, CancellationToken ct)
    {
        var status = response.StatusCode;
        // a PATCH is 202 by the spec; ECR answers 201 (kitops#821)
        if (patch ? status is HttpStatusCode.Accepted or HttpStatusCode.NoContent or HttpStatusCode.Created
                  : status is HttpStatusCode.Created or HttpStatusCode.NoContent or HttpStatusCode.OK)
        {
            return (UploadOutcome.Stored, null, null);
        }
        if (await BlobUploader.IsDeadSessionAsync(response, ct).ConfigureAwait(false))
        {
            return (UploadOutcome.SessionDead, new HttpRequestException($"{(int)status} {BlobUploader.ServerCode(response)}"), null);
        }
        if ((patch && status == HttpStatusCode.RequestedRangeNotSatisfiable) || HttpRetry.IsTransient(status))
        {
            var delay = HttpRetry.CheckServerDelay(response, maxRetryWait);
            return (UploadOutcome.Retry, new HttpRequestException($"{(int)status} {response.ReasonPhrase}"), delay);
        }
        return (UploadOutcome.Refused, null, null);
    }
}
