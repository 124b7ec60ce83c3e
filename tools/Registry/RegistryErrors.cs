using System.Net;
using System.Text.Json;
using ModelCar.Common.Http;

namespace ModelCar.Registry;

/// <summary>
/// Turns a registry's non-success answer into <see cref="HttpFailureException"/> carrying the
/// server's own error code (BLOB_UPLOAD_INVALID, DENIED, …) — like go-containerregistry's
/// transport.CheckError.
/// </summary>
public static class RegistryErrors
{
    /// <summary>Parses <c>{"errors":[…]}</c>; null when the body is something else.</summary>
    public static RegistryErrorEntry? Parse(string? body)
    {
        if (string.IsNullOrWhiteSpace(body) || body.TrimStart()[0] != '{')
        {
            return null;
        }
        try
        {
            var parsed = JsonSerializer.Deserialize(body, RegistryJsonContext.Default.RegistryErrorBody);
            if (parsed?.Errors is not { Count: > 0 } errors)
            {
                return null;
            }
            if (errors.Count == 1)
            {
                return errors[0];
            }
            return new RegistryErrorEntry
            {
                Code = string.Join(", ", errors.Select(e => e.Code).Where(c => !string.IsNullOrEmpty(c)).Distinct()),
                Message = string.Join("; ", errors.Select(e => e.Message).Where(c => !string.IsNullOrEmpty(c))),
            };
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Reads (at most 64 KiB of) the body and builds the exception. Disposes the response.</summary>
    public static async Task<HttpFailureException> ToExceptionAsync(HttpResponseMessage response, CancellationToken ct, string? hint = null, RegistryReason? reason = null)
    {
        using (response)
        {
            string? body = null;
            try
            {
                if (response.Content is not null)
                {
                    await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                    var buffer = new byte[64 * 1024];
                    int total = 0;
                    int n;
                    while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false)) > 0)
                    {
                        total += n;
                    }
                    body = System.Text.Encoding.UTF8.GetString(buffer, 0, total);
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                body = null;
            }
            var entry = Parse(body);
            string? message = entry?.Message;
            if (entry is null && !string.IsNullOrWhiteSpace(body) && body.Length < 300 && !body.TrimStart().StartsWith('<'))
            {
                message = body;
            }
            hint ??= DefaultHint(response.StatusCode, entry?.Code);
            reason ??= response.StatusCode switch
            {
                HttpStatusCode.Unauthorized => RegistryReason.Unauthorized,
                HttpStatusCode.RequestEntityTooLarge => RegistryReason.BodyTooLarge,
                _ => null,
            };
            return new HttpFailureException(response.RequestMessage?.Method ?? HttpMethod.Get, response.RequestMessage?.RequestUri,
                response.StatusCode, response.ReasonPhrase, entry?.Code, message, hint, reason);
        }
    }

    private static string? DefaultHint(HttpStatusCode status, string? code) => status switch
    {
        HttpStatusCode.Forbidden => "the credentials are not allowed to push to this repository",
        HttpStatusCode.RequestEntityTooLarge => "the registry refuses a body this large",
        HttpStatusCode.NotFound when code is "NAME_UNKNOWN" => "the repository does not exist or is not visible to these credentials",
        _ => null,
    };
}
