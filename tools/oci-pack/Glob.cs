using System.Text;
using System.Text.RegularExpressions;

namespace ModelCar.OciPack;

/// <summary>
/// huggingface_hub's pattern semantics (<c>filter_repo_objects</c>): Python <c>fnmatch</c> on the
/// path relative to the model directory, case-sensitive, <c>*</c> also matches <c>/</c>, a pattern
/// ending in <c>/</c> means "everything in that folder" (a <c>*</c> is appended).
/// </summary>
public sealed class Glob
{
    private readonly Regex _regex;

    public Glob(string pattern)
    {
        Pattern = pattern;
        var effective = pattern.EndsWith('/') ? pattern + "*" : pattern;
        _regex = new Regex(Translate(effective), RegexOptions.CultureInvariant | RegexOptions.Singleline);
    }

    public string Pattern { get; }

    public bool IsMatch(string relativePath) => _regex.IsMatch(relativePath);

    /// <summary>Python's fnmatch.translate: * → .*, ? → ., [seq] and [!seq] classes, the rest literal.</summary>
    public static string Translate(string pattern)
    {
        var sb = new StringBuilder("^(?:");
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i++];
            switch (c)
            {
                case '*':
                    sb.Append(".*");
                    break;
                case '?':
                    sb.Append('.');
                    break;
                case '[':
                    int j = i;
                    if (j < pattern.Length && pattern[j] == '!')
                    {
                        j++;
                    }
                    if (j < pattern.Length && pattern[j] == ']')
                    {
                        j++;
                    }
                    while (j < pattern.Length && pattern[j] != ']')
                    {
                        j++;
                    }
                    if (j >= pattern.Length)
                    {
                        sb.Append(@"\[");
                    }
                    else
                    {
                        var body = pattern[i..j].Replace(@"\", @"\\");
                        i = j + 1;
                        if (body.StartsWith('!'))
                        {
                            body = "^" + body[1..];
                        }
                        else if (body.StartsWith('^'))
                        {
                            body = @"\" + body;
                        }
                        sb.Append('[').Append(body.Replace("[", @"\[")).Append(']');
                    }
                    break;
                default:
                    sb.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }
        return sb.Append(")$").ToString();
    }
}

/// <summary>Include/exclude filter: included if it matches any include (or there are none) and no exclude.</summary>
public sealed class PathFilter(IReadOnlyList<Glob> includes, IReadOnlyList<Glob> excludes)
{
    /// <summary>Metadata folders always left out: the HF cache folder and hf-fetch's own.</summary>
    public static readonly string[] DefaultExcludes = [".cache/", ".hf-fetch/"];

    public IReadOnlyList<Glob> Includes { get; } = includes;
    public IReadOnlyList<Glob> Excludes { get; } = excludes;

    public static PathFilter Create(IEnumerable<string> includes, IEnumerable<string> excludes) =>
        new([.. includes.Select(p => new Glob(p))], [.. DefaultExcludes.Concat(excludes).Select(p => new Glob(p))]);

    public bool IsIncluded(string relativePath) =>
        (Includes.Count == 0 || Includes.Any(g => g.IsMatch(relativePath))) && !Excludes.Any(g => g.IsMatch(relativePath));
}
