using System.Text;
using System.Text.RegularExpressions;

namespace ModelCar.Common.IO;

/// <summary>
/// huggingface_hub's filter_repo_objects (shared: hf-fetch filters the repo listing, oci-pack the model folder): Python fnmatch (case-sensitive on POSIX, '*' and '?' also match
/// '/', [seq] and [!seq] classes, a '[' without ']' is literal), a pattern ending in '/' means that folder
/// ('/*' appended); a path must match some include pattern (if any), then no exclude pattern.
/// </summary>
public sealed class GlobFilter
{
    private readonly Regex[]? _include;
    private readonly Regex[] _exclude;

    public GlobFilter(IEnumerable<string>? include, IEnumerable<string>? exclude)
    {
        var inc = include?.ToArray();
        _include = inc is { Length: > 0 } ? inc.Select(Compile).ToArray() : null;
        _exclude = (exclude ?? []).Select(Compile).ToArray();
    }

    public bool Matches(string path) =>
        (_include is null || _include.Any(r => r.IsMatch(path))) && !_exclude.Any(r => r.IsMatch(path));

    /// <summary>fnmatch.fnmatchcase(name, pattern) (with the folder rule applied to the pattern).</summary>
    public static bool FnMatch(string name, string pattern) => Compile(pattern).IsMatch(name);

    private static Regex Compile(string pattern)
    {
        if (pattern.EndsWith('/'))
        {
            pattern += "*";
        }
        return new Regex(Translate(pattern), RegexOptions.Singleline | RegexOptions.CultureInvariant);
    }

    /// <summary>Python's fnmatch.translate, producing a .NET pattern anchored at both ends.</summary>
    public static string Translate(string pat)
    {
        var sb = new StringBuilder("\\A(?:");
        int i = 0, n = pat.Length;
        while (i < n)
        {
            char c = pat[i++];
            if (c == '*')
            {
                while (i < n && pat[i] == '*')
                {
                    i++;
                }
                sb.Append(".*");
            }
            else if (c == '?')
            {
                sb.Append('.');
            }
            else if (c == '[')
            {
                int j = i;
                if (j < n && pat[j] == '!')
                {
                    j++;
                }
                if (j < n && pat[j] == ']')
                {
                    j++;
                }
                while (j < n && pat[j] != ']')
                {
                    j++;
                }
                if (j >= n)
                {
                    sb.Append("\\[");
                }
                else
                {
                    sb.Append(CharClass(pat[i..j]));
                    i = j + 1;
                }
            }
            else
            {
                sb.Append(Regex.Escape(c.ToString()));
            }
        }
        return sb.Append(")\\z").ToString();
    }

    /// <summary>The inside of a [...] set: leading '!' negates, a-b ranges (reversed ones dropped), all else literal.</summary>
    private static string CharClass(string stuff)
    {
        bool negate = stuff.StartsWith('!');
        if (negate)
        {
            stuff = stuff[1..];
        }
        var items = new StringBuilder();
        int k = 0;
        while (k < stuff.Length)
        {
            char a = stuff[k];
            if (k + 2 < stuff.Length && stuff[k + 1] == '-')
            {
                char b = stuff[k + 2];
                if (a <= b)
                {
                    items.Append(Escape(a)).Append('-').Append(Escape(b));
                }
                k += 3;
            }
            else
            {
                items.Append(Escape(a));
                k++;
            }
        }
        if (items.Length == 0)
        {
            return negate ? "." : "(?!)";  // "[!]" matches any one character; an empty set never matches
        }
        return negate ? $"[^{items}]" : $"[{items}]";
    }

    private static string Escape(char c) => c is '\\' or ']' or '[' or '^' or '-' ? "\\" + c : c.ToString();
}
