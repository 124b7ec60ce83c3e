using System.Text.RegularExpressions;
using ModelCar.Common;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

public enum RepoType
{
    Model,
    Dataset,
}

/// <summary>Hub URLs (quoting as huggingface_hub does) and the checks on repo ids and server paths.</summary>
public static partial class HubPaths
{
    public const string DefaultEndpoint = "https://huggingface.co";

    public static string ApiSegment(RepoType type) => type == RepoType.Dataset ? "datasets" : "models";

    public static string TypeName(RepoType type) => type == RepoType.Dataset ? "dataset" : "model";

    /// <summary>Python's quote(s, safe=""): everything but unreserved characters percent-encoded (UTF-8).</summary>
    public static string QuoteAll(string s) => Uri.EscapeDataString(s);

    /// <summary>Python's quote(path): like <see cref="QuoteAll"/> but '/' kept.</summary>
    public static string QuotePath(string path) => string.Join('/', path.Split('/').Select(Uri.EscapeDataString));

    public static Uri Revision(string endpoint, RepoType type, string repoId, string revision) =>
        new($"{endpoint}/api/{ApiSegment(type)}/{repoId}/revision/{QuoteAll(revision)}");

    public static Uri Tree(string endpoint, RepoType type, string repoId, string commit) =>
        new($"{endpoint}/api/{ApiSegment(type)}/{repoId}/tree/{QuoteAll(commit)}?recursive=true&expand=false");

    public static Uri Resolve(string endpoint, RepoType type, string repoId, string commit, string path) =>
        new($"{endpoint}/{(type == RepoType.Dataset ? "datasets/" : "")}{repoId}/resolve/{QuoteAll(commit)}/{QuotePath(path)}");

    /// <summary>HF_ENDPOINT rules: --endpoint, else HF_ENDPOINT, else huggingface.co; trailing '/' stripped.</summary>
    public static string ResolveEndpoint(string? option, Func<string, string?> env)
    {
        var value = !string.IsNullOrWhiteSpace(option) ? option : env("HF_ENDPOINT");
        value = string.IsNullOrWhiteSpace(value) ? DefaultEndpoint : value.Trim();
        value = value.TrimEnd('/');
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || !string.IsNullOrEmpty(uri.Query))
        {
            throw new HubInputException($"endpoint '{value}' is not an http(s) URL");
        }
        return value;
    }

    /// <summary>HF_HUB_OFFLINE as huggingface_hub reads it (1, ON, YES, TRUE).</summary>
    public static bool IsOfflineEnv(Func<string, string?> env) =>
        env("HF_HUB_OFFLINE")?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    public static void ValidateRepoId(string repoId)
    {
        if (!RepoIdPattern().IsMatch(repoId) || repoId.Contains("--", StringComparison.Ordinal) || repoId.Contains("..", StringComparison.Ordinal))
        {
            throw new HubInputException($"'{repoId}' is not a Hub repo id (expected NAME or ORG/NAME)");
        }
    }

    /// <summary>
    /// A repository path the server sent, checked before anything is written: relative, '/'-separated,
    /// no '..' or '.' or empty segments, no backslash, no drive letter, no NUL, not in hf-fetch's own folder.
    /// Returns the reason it is refused, or null if safe.
    /// </summary>
    public static string? UnsafeReason(string path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return "empty path";
        }
        if (path.Contains('\\'))
        {
            return "backslash in path";
        }
        if (path.Contains('\0'))
        {
            return "NUL in path";
        }
        if (path.StartsWith('/'))
        {
            return "absolute path";
        }
        if (path.Length >= 2 && char.IsAsciiLetter(path[0]) && path[1] == ':')
        {
            return "drive-letter path";
        }
        foreach (var segment in path.Split('/'))
        {
            if (segment is "" or "." or "..")
            {
                return segment == ".." ? "'..' in path" : "empty or '.' segment in path";
            }
        }
        var first = path.Split('/')[0];
        if (first == StateFolder)
        {
            return $"path inside hf-fetch's state folder '{StateFolder}/'";
        }
        if (first == OciPackStateFolder)
        {
            return $"path inside oci-pack's state folder '{OciPackStateFolder}/' (its layer record)";
        }
        return null;
    }

    /// <summary>The folder under DIR holding hf-fetch's state (oci-pack excludes it).</summary>
    public const string StateFolder = ".hf-fetch";

    /// <summary>
    /// The folder under a model directory where oci-pack keeps its layer record (ModelCar.Packing's
    /// LayerDigestRecord.DirectoryName): a file the Hub names is never written there.
    /// </summary>
    public const string OciPackStateFolder = ".oci-pack";

    /// <summary>
    /// A server-sent path as it may be printed in one line: control characters (NUL, newline, ESC…) and
    /// backslashes as <c>\xNN</c> / <c>\\</c> escapes, so the line stays one line and shows what was sent.
    /// </summary>
    public static string Printable(string path)
    {
        if (!path.Any(c => char.IsControl(c) || c == '\\'))
        {
            return path;
        }
        var sb = new System.Text.StringBuilder(path.Length + 8);
        foreach (var c in path)
        {
            if (c == '\\')
            {
                sb.Append("\\\\");
            }
            else if (char.IsControl(c))
            {
                sb.Append(c <= 0xFF ? $"\\x{(int)c:x2}" : $"\\u{(int)c:x4}");
            }
            else
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }

    /// <summary>Full local path of a repo file under <paramref name="root"/>; throws if unsafe or outside it.</summary>
    public static string LocalPath(string root, string repoPath)
    {
        if (UnsafeReason(repoPath) is { } why)
        {
            throw new HubException($"refusing server path '{Printable(repoPath)}': {why}");
        }
        var fullRoot = Path.GetFullPath(root);
        var full = Path.GetFullPath(Path.Combine(fullRoot, repoPath));
        if (!full.StartsWith(fullRoot.TrimEnd('/') + "/", StringComparison.Ordinal))
        {
            throw new HubException($"refusing server path '{Printable(repoPath)}': it resolves outside {fullRoot}");
        }
        // the text is safe; symbolic links already on disk must not lead elsewhere either (DIR itself may be one)
        var realRoot = RealPath(fullRoot);
        if (!IsInside(RealPath(full), realRoot))
        {
            var link = FirstLinkBelow(fullRoot, full);
            throw new HubException($"refusing server path '{Printable(repoPath)}': it resolves outside {fullRoot} through the symbolic link {link ?? full}");
        }
        return full;
    }

    private static bool IsInside(string path, string root) => path.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal);

    /// <summary>
    /// realpath(3) for paths that may not exist yet: every symbolic link along the path is followed (at most
    /// 40), missing components are kept as they are.
    /// </summary>
    public static string RealPath(string path)
    {
        // not Path.GetFullPath: it would drop "x/.." as text, before x is known to be a link
        var absolute = Path.IsPathRooted(path) ? path : Path.Combine(Environment.CurrentDirectory, path);
        var result = SymlinkWalk.Resolve(absolute, ReadLink, SymlinkScope.Posix);
        if (result.Status == SymlinkWalkStatus.TooManyLinks)
        {
            throw new HubException($"too many levels of symbolic links at /{result.Path}");
        }
        return "/" + result.Path;
    }

    // missing components are not links: they are kept as they are
    private static bool ReadLink(string path, out string? target)
    {
        target = new FileInfo("/" + path).LinkTarget;
        return true;
    }

    private static string? FirstLinkBelow(string root, string full)
    {
        var current = root;
        foreach (var part in Path.GetRelativePath(root, full).Split('/'))
        {
            current = Path.Combine(current, part);
            if (new FileInfo(current).LinkTarget is not null)
            {
                return current;
            }
        }
        return null;
    }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}(/[A-Za-z0-9_.\-]{1,96})?$")]
    private static partial Regex RepoIdPattern();
}
