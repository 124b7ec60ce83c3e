using System.Text;

namespace ModelCar.Registry.Auth;

/// <summary>A parsed <c>WWW-Authenticate</c> challenge: scheme (Basic, Bearer) and its parameters.</summary>
public sealed record Challenge(string Scheme, IReadOnlyDictionary<string, string> Parameters)
{
    public bool IsBearer => Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase);

    public bool IsBasic => Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase);

    public string? Realm => Parameters.GetValueOrDefault("realm");

    public string? Service => Parameters.GetValueOrDefault("service");

    public string? Scope => Parameters.GetValueOrDefault("scope");

    /// <summary>The first Bearer or Basic challenge of a response, preferring Bearer; null if none.</summary>
    public static Challenge? From(HttpResponseMessage response)
    {
        var all = response.Headers.WwwAuthenticate
            .SelectMany(h => ParseAll(h.Parameter is null ? h.Scheme : h.Scheme + " " + h.Parameter))
            .ToList();
        return all.FirstOrDefault(c => c.IsBearer) ?? all.FirstOrDefault(c => c.IsBasic) ?? all.FirstOrDefault();
    }

    public static Challenge? Parse(string header) => ParseAll(header).FirstOrDefault();

    /// <summary>
    /// RFC 7235 challenges: <c>scheme key=value, key="quoted \"value\"", …</c>; several challenges
    /// may share one header line (a token followed by a space starts a new one).
    /// </summary>
    public static IReadOnlyList<Challenge> ParseAll(string header)
    {
        var result = new List<Challenge>();
        int i = 0;
        string? scheme = null;
        var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        void Flush()
        {
            if (scheme is not null)
            {
                result.Add(new Challenge(scheme, parameters));
            }
            parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            scheme = null;
        }
        while (i < header.Length)
        {
            while (i < header.Length && (header[i] == ' ' || header[i] == ',' || header[i] == '\t'))
            {
                i++;
            }
            int start = i;
            while (i < header.Length && header[i] is not ' ' and not '=' and not ',' and not '\t')
            {
                i++;
            }
            if (start == i)
            {
                break;
            }
            string token = header[start..i];
            int j = i;
            while (j < header.Length && header[j] == ' ')
            {
                j++;
            }
            if (j < header.Length && header[j] == '=' && scheme is not null)
            {
                i = j + 1;
                while (i < header.Length && header[i] == ' ')
                {
                    i++;
                }
                string value;
                if (i < header.Length && header[i] == '"')
                {
                    var sb = new StringBuilder();
                    i++;
                    while (i < header.Length && header[i] != '"')
                    {
                        if (header[i] == '\\' && i + 1 < header.Length)
                        {
                            i++;
                        }
                        sb.Append(header[i]);
                        i++;
                    }
                    i++; // closing quote
                    value = sb.ToString();
                }
                else
                {
                    int vs = i;
                    while (i < header.Length && header[i] != ',')
                    {
                        i++;
                    }
                    value = header[vs..i].Trim();
                }
                parameters[token] = value;
            }
            else
            {
                Flush();
                scheme = token;
                i = j;
            }
        }
        Flush();
        return result;
    }
}
