using System.Text.RegularExpressions;

namespace ModelCar.Oci;

/// <summary>
/// A registry image reference as docker/skopeo understand it: HOST[:PORT]/REPO[:TAG][@DIGEST],
/// with docker.io and library/ filled in for short names.
/// </summary>
public sealed partial record RegistryReference(string Registry, string Repository, string? Tag, Digest? Digest)
{
    public const string DockerHub = "docker.io";

    /// <summary>The host used for HTTP (docker.io's API lives on registry-1.docker.io).</summary>
    public string ApiHost => Registry == DockerHub ? "registry-1.docker.io" : Registry;

    /// <summary>Tag or digest string for the manifest URL; "latest" when neither was given.</summary>
    public string ManifestReference => Digest?.ToString() ?? Tag ?? "latest";

    public static RegistryReference Parse(string text)
    {
        if (!TryParse(text, out var r, out var error))
        {
            throw new FormatException(error);
        }
        return r!;
    }

    public static bool TryParse(string text, out RegistryReference? reference, out string error)
    {
        reference = null;
        error = string.Empty;
        string rest = text;
        Digest? digest = null;
        int at = rest.IndexOf('@');
        if (at >= 0)
        {
            if (!Oci.Digest.TryParse(rest[(at + 1)..], out var d))
            {
                error = $"'{text}': '{rest[(at + 1)..]}' is not a valid digest";
                return false;
            }
            digest = d;
            rest = rest[..at];
        }
        string? tag = null;
        int lastSlash = rest.LastIndexOf('/');
        int colon = rest.LastIndexOf(':');
        if (colon > lastSlash)
        {
            tag = rest[(colon + 1)..];
            rest = rest[..colon];
            if (!TagPattern().IsMatch(tag))
            {
                error = $"'{text}': '{tag}' is not a valid tag (ASCII letters, digits, _ . -, starting with a letter, digit or _, at most 128)";
                return false;
            }
        }
        string registry;
        string repo;
        int slash = rest.IndexOf('/');
        string first = slash < 0 ? rest : rest[..slash];
        if (slash >= 0 && (first.Contains('.') || first.Contains(':') || first == "localhost" || first.Any(char.IsUpper)))
        {
            registry = first;
            repo = rest[(slash + 1)..];
        }
        else
        {
            registry = DockerHub;
            repo = rest;
        }
        if (registry == "index.docker.io")
        {
            registry = DockerHub;
        }
        if (registry == DockerHub && !repo.Contains('/'))
        {
            repo = "library/" + repo;
        }
        if (repo.Length == 0 || !RepoPattern().IsMatch(repo))
        {
            error = $"'{text}': repository '{repo}' is not valid (lowercase letters, digits and . _ - / separators)";
            return false;
        }
        if (!HostPattern().IsMatch(registry))
        {
            error = $"'{text}': '{registry}' is not a valid registry host";
            return false;
        }
        int portColon = registry.LastIndexOf(':');
        if (portColon > registry.LastIndexOf(']') && !(int.TryParse(registry.AsSpan(portColon + 1), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int port) && port is >= 1 and <= 65535))
        {
            error = $"'{text}': port '{registry[(portColon + 1)..]}' is out of range (1-65535)";
            return false;
        }
        reference = new RegistryReference(registry, repo, tag, digest);
        return true;
    }

    public RegistryReference WithDigest(Digest digest) => this with { Tag = null, Digest = digest };

    /// <summary>HOST/REPO (no tag or digest).</summary>
    public string Name => $"{Registry}/{Repository}";

    public override string ToString() =>
        Name + (Tag is null ? string.Empty : ":" + Tag) + (Digest is null ? string.Empty : "@" + Digest);

    // distribution-spec's tag grammar, ASCII only (\w would also take non-ASCII letters the registry then refuses)
    [GeneratedRegex(@"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$", RegexOptions.CultureInvariant)]
    private static partial Regex TagPattern();

    [GeneratedRegex(@"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")]
    private static partial Regex RepoPattern();

    [GeneratedRegex(@"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")]
    private static partial Regex HostPattern();
}

/// <summary>An image location in skopeo's transport syntax.</summary>
public abstract record ImageLocation
{
    public static ImageLocation Parse(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new FormatException("empty image reference");
        }
        if (text == "scratch")
        {
            return new ScratchLocation();
        }
        if (text.StartsWith("docker://", StringComparison.Ordinal))
        {
            var rest = text["docker://".Length..];
            if (UserInfoEnd(rest) is { } at)
            {
                // never echo it: the part before '@' is a user name and maybe a password
                throw new FormatException($"'docker://***@{rest[(at + 1)..]}': a docker:// reference takes no user name or password (credentials go in an auth file or the credential options)");
            }
            return new RegistryLocation(RegistryReference.Parse(rest));
        }
        if (text.StartsWith("oci-archive:", StringComparison.Ordinal))
        {
            var (path, reference) = SplitPathAndReference(text["oci-archive:".Length..], text);
            return new OciArchiveLocation(path, reference);
        }
        if (text.StartsWith("oci:", StringComparison.Ordinal))
        {
            var (path, reference) = SplitPathAndReference(text["oci:".Length..], text);
            return new OciLayoutLocation(path, reference);
        }
        throw new FormatException($"'{text}' is not a supported image reference: use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/REPO[:TAG|@DIGEST]");
    }

    /// <summary>
    /// The '@' ending <c>USER[:PASS]@</c> in <c>USER[:PASS]@HOST/…</c>: the last '@' before the first '/'
    /// that does not start a digest (<c>busybox@sha256:…</c> is a digest reference); null if none.
    /// </summary>
    private static int? UserInfoEnd(string reference)
    {
        int slash = reference.IndexOf('/');
        int at = (slash < 0 ? reference : reference[..slash]).LastIndexOf('@');
        return at >= 0 && !Digest.TryParse(reference[(at + 1)..], out _) ? at : null;
    }

    /// <summary>Like containers/image: the path ends at the first ':' (paths cannot contain one).</summary>
    private static (string Path, string? Reference) SplitPathAndReference(string rest, string text)
    {
        int colon = rest.IndexOf(':');
        string path = colon < 0 ? rest : rest[..colon];
        string? reference = colon < 0 ? null : rest[(colon + 1)..];
        if (path.Length == 0)
        {
            throw new FormatException($"'{text}': missing path");
        }
        if (reference is not null && (reference.Length == 0 || !RefNamePattern.IsMatch(reference)))
        {
            throw new FormatException($"'{text}': '{reference}' is not a valid reference name");
        }
        return (path, reference);
    }

    // image-spec: ref.name components separated by . / - _ (we accept the tag grammar plus '/')
    private static readonly Regex RefNamePattern = new(@"^[A-Za-z0-9][A-Za-z0-9._\-/+@:]*$", RegexOptions.CultureInvariant);
}

public sealed record OciLayoutLocation(string Path, string? Reference) : ImageLocation
{
    public override string ToString() => Reference is null ? $"oci:{Path}" : $"oci:{Path}:{Reference}";
}

public sealed record OciArchiveLocation(string Path, string? Reference) : ImageLocation
{
    public override string ToString() => Reference is null ? $"oci-archive:{Path}" : $"oci-archive:{Path}:{Reference}";
}

public sealed record RegistryLocation(RegistryReference Reference) : ImageLocation
{
    public override string ToString() => $"docker://{Reference}";
}

public sealed record ScratchLocation : ImageLocation
{
    public override string ToString() => "scratch";
}
