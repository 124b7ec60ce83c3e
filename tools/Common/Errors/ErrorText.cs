using System.Net.Http;
using System.Security.Authentication;

namespace ModelCar.Common;

/// <summary>Exceptions as the one line a log or an error report shows.</summary>
public static class ErrorText
{
    /// <summary>
    /// One line naming the cause: a <see cref="ModelCarException"/>'s own message (complete in itself),
    /// else the message chain of the exception, deduplicated.
    /// </summary>
    public static string Describe(Exception ex)
    {
        if (ex is ModelCarException)
        {
            return OneLine(ex.Message);
        }
        var parts = new List<string>();
        for (Exception? e = ex; e is not null; e = e.InnerException)
        {
            string m = e switch
            {
                AuthenticationException => "TLS: " + e.Message,
                _ => e.Message,
            };
            m = OneLine(m);
            if (m.Length > 0 && !parts.Any(p => p.Contains(m, StringComparison.Ordinal)))
            {
                parts.Add(m);
            }
            if (e is HttpRequestException { HttpRequestError: not HttpRequestError.Unknown } hre && parts.Count == 1)
            {
                parts[0] = $"{parts[0]} ({hre.HttpRequestError})";
            }
        }
        return string.Join(": ", parts);
    }

    public static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
