using System.Text.RegularExpressions;
using System.Xml.Linq;
using ModelCar.TestSupport;

namespace ModelCar.Common.Tests;

/// <summary>
/// The libraries say what is wrong; only the commands know the options (issue 12). These read the
/// sources and project files, so a regression fails here before any user sees a flag the library
/// cannot know about (oci-pack has no --revision, a library user has no flags at all).
/// </summary>
public partial class LibraryBoundaryTests
{
    private static readonly string[] Libraries = ["Common", "Oci", "Registry", "HuggingFace", "ModelRegistry", "Packing", "Signing"];

    private static IEnumerable<string> LibrarySources() => Libraries.SelectMany(l =>
        Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "tools", l), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)));

    [Fact]
    public void No_library_string_literal_names_a_cli_flag()
    {
        var offenders = new List<string>();
        foreach (var file in LibrarySources())
        {
            foreach (var (line, literal) in StringLiterals(File.ReadAllText(file)))
            {
                if (FlagPattern().Match(literal) is { Success: true } m)
                {
                    offenders.Add($"{Path.GetRelativePath(RepoPaths.Root, file)}:{line}: {m.Value} in {literal}");
                }
            }
        }
        Assert.True(offenders.Count == 0, "library messages name CLI flags (raise a typed reason; the command adds the hint):\n" + string.Join("\n", offenders));
    }

    [Fact]
    public void The_flag_scan_sees_every_kind_of_literal()
    {
        // the scanner itself: each of these must be found, comments and the bare "--" must not
        var code = """
            var a = "use --creds";
            var b = $"set {x} --chunk-size";
            var c = @"raise --layer-threshold";
            var d = $@"see --revision {r}";
            // a comment about --tls-verify is fine
            /* so is --ca-file here */
            var e = "--";
            var f = 'x';
            var g = "escaped \" quote --token-file";
            """;
        var found = StringLiterals(code).Select(l => l.Literal).Where(l => FlagPattern().IsMatch(l)).ToList();
        Assert.Equal(5, found.Count);
        Assert.Contains(found, l => l.Contains("--token-file", StringComparison.Ordinal));
        Assert.DoesNotContain(found, l => l.Contains("--tls-verify", StringComparison.Ordinal) || l.Contains("--ca-file", StringComparison.Ordinal));
    }

    [Fact]
    public void No_library_uses_the_command_side()
    {
        foreach (var library in Libraries)
        {
            var dir = Path.Combine(RepoPaths.Root, "tools", library);
            var project = Directory.GetFiles(dir, "*.csproj").Single();
            var xml = XDocument.Load(project);
            var references = xml.Descendants("ProjectReference").Select(r => (string?)r.Attribute("Include") ?? "").ToList();
            Assert.DoesNotContain(references, r => r.Contains("Cli", StringComparison.Ordinal) || r.Contains("hf-fetch", StringComparison.Ordinal)
                || r.Contains("oci-pack", StringComparison.Ordinal) || r.Contains("registry-push", StringComparison.Ordinal) || r.Contains("mr-register", StringComparison.Ordinal));
            var packages = xml.Descendants("PackageReference").Select(r => (string?)r.Attribute("Include") ?? "").ToList();
            Assert.DoesNotContain("System.CommandLine", packages);
        }
        foreach (var file in LibrarySources())
        {
            var text = File.ReadAllText(file);
            Assert.False(text.Contains("ToolException", StringComparison.Ordinal) || text.Contains("UsageException", StringComparison.Ordinal)
                || text.Contains("Common.Cli", StringComparison.Ordinal), $"{Path.GetRelativePath(RepoPaths.Root, file)} refers to the command side");
        }
    }

    /// <summary>
    /// docs/architecture.md's library table is the contract (issue 19): each project's references are
    /// exactly the ones listed, and every project under tools/ has a row.
    /// </summary>
    [Fact]
    public void Project_references_are_the_ones_docs_architecture_lists()
    {
        var doc = File.ReadAllLines(Path.Combine(RepoPaths.Root, "docs", "architecture.md"));
        var listed = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var line in doc)
        {
            var m = TableRow().Match(line);
            if (!m.Success)
            {
                continue;
            }
            var refs = m.Groups["refs"].Value.Trim();
            listed[m.Groups["name"].Value] = new SortedSet<string>(
                refs is "—" or "" ? [] : refs.Split(',').Select(r => r.Trim().Trim('`')), StringComparer.Ordinal);
        }
        var problems = new List<string>();
        foreach (var project in Directory.GetFiles(Path.Combine(RepoPaths.Root, "tools"), "*.csproj", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            var name = Path.GetFileName(Path.GetDirectoryName(project)!);
            var actual = new SortedSet<string>(XDocument.Load(project).Descendants("ProjectReference")
                .Select(r => Path.GetFileName(Path.GetDirectoryName(((string?)r.Attribute("Include") ?? "").Replace('\\', '/'))!)!), StringComparer.Ordinal);
            if (!listed.TryGetValue(name, out var expected))
            {
                problems.Add($"tools/{name} has no row in docs/architecture.md");
                continue;
            }
            if (!actual.SetEquals(expected))
            {
                problems.Add($"tools/{name} references [{string.Join(", ", actual)}], docs/architecture.md lists [{string.Join(", ", expected)}]");
            }
        }
        Assert.True(listed.Count >= 12, $"only {listed.Count} rows read from docs/architecture.md's table");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    /// <summary>A row of the library table: | `name` | owns | `A`, `B` | may not |.</summary>
    [GeneratedRegex(@"^\| `(?<name>[A-Za-z-]+)` \|[^|]*\| (?<refs>[^|]*)\|")]
    private static partial Regex TableRow();

    /// <summary>A CLI flag: two dashes, then a lowercase letter (the bare "--" of a repo-id check is not one).</summary>
    [GeneratedRegex(@"(?<![\w-])--[a-z][a-z0-9-]*")]
    private static partial Regex FlagPattern();

    /// <summary>
    /// The string literals of C# source (regular, verbatim, interpolated, raw) with their line, skipping
    /// comments and char literals. Interpolation holes are kept in the text (they may hold literals too).
    /// </summary>
    internal static IEnumerable<(int Line, string Literal)> StringLiterals(string code)
    {
        int line = 1;
        for (int i = 0; i < code.Length; i++)
        {
            char c = code[i];
            if (c == '\n')
            {
                line++;
                continue;
            }
            if (c == '/' && i + 1 < code.Length && code[i + 1] == '/')
            {
                while (i < code.Length && code[i] != '\n')
                {
                    i++;
                }
                i--;
                continue;
            }
            if (c == '/' && i + 1 < code.Length && code[i + 1] == '*')
            {
                int end = code.IndexOf("*/", i + 2, StringComparison.Ordinal);
                end = end < 0 ? code.Length : end + 2;
                line += code.AsSpan(i, end - i).Count('\n');
                i = end - 1;
                continue;
            }
            if (c == '\'')
            {
                // char literal: '\'' or 'x' or '\n'
                int end = code[i + 1] == '\\' ? code.IndexOf('\'', i + 3) : code.IndexOf('\'', i + 2);
                i = end < 0 ? code.Length : end;
                continue;
            }
            if (c != '"')
            {
                continue;
            }
            int start = i;
            int startLine = line;
            // prefixes: $, @, $@, @$ right before the quote
            bool verbatim = start > 0 && (code[start - 1] == '@' || (start > 1 && code[start - 2] == '@' && code[start - 1] == '$'));
            int quotes = 0;
            while (i + quotes < code.Length && code[i + quotes] == '"')
            {
                quotes++;
            }
            string literal;
            if (quotes >= 3)
            {
                // raw string literal: ends at the same number of quotes
                int end = code.IndexOf(new string('"', quotes), i + quotes, StringComparison.Ordinal);
                end = end < 0 ? code.Length : end;
                literal = code[(i + quotes)..end];
                i = Math.Min(code.Length, end + quotes) - 1;
            }
            else if (quotes == 2 && !verbatim)
            {
                literal = string.Empty; // ""
                i += 1;
            }
            else
            {
                int j = i + 1;
                var sb = new System.Text.StringBuilder();
                while (j < code.Length)
                {
                    if (verbatim && code[j] == '"' && j + 1 < code.Length && code[j + 1] == '"')
                    {
                        sb.Append('"');
                        j += 2;
                        continue;
                    }
                    if (!verbatim && code[j] == '\\' && j + 1 < code.Length)
                    {
                        sb.Append(code, j, 2);
                        j += 2;
                        continue;
                    }
                    if (code[j] == '"' || (!verbatim && code[j] == '\n'))
                    {
                        break;
                    }
                    sb.Append(code[j]);
                    j++;
                }
                literal = sb.ToString();
                line += literal.Count(ch => ch == '\n');
                i = j;
            }
            yield return (startLine, literal);
        }
    }
}
