namespace ModelCar.Common.IO;

/// <summary>What a walk may do at the root: the kernel's rules, or stay inside it.</summary>
public enum SymlinkScope
{
    /// <summary>path_resolution(7): ".." of the root is the root, an absolute link restarts at the root.</summary>
    Posix,

    /// <summary>A ".." above the root or an absolute link ends the walk (<see cref="SymlinkWalkStatus.AboveRoot"/>, <see cref="SymlinkWalkStatus.AbsoluteLink"/>).</summary>
    Confined,
}

public enum SymlinkWalkStatus
{
    Resolved,
    Missing,
    TooManyLinks,
    AboveRoot,
    AbsoluteLink,
}

/// <summary>
/// How a walk ended. <see cref="Path"/> is relative to the root, '/'-separated, without leading '/':
/// the resolved path, or the path where the walk stopped (the missing component, the link one hop too many).
/// </summary>
public readonly record struct SymlinkWalkResult(SymlinkWalkStatus Status, string Path);

/// <summary>
/// Symbolic-link resolution component by component, as the kernel does it, over any namespace (a real
/// file system, a tar index, a map of links): each component is looked up, a link's target is spliced
/// in front of what is left, "." is dropped and ".." goes up from the resolved path so far (so "x/.."
/// through a linked x lands next to x's target). At most <see cref="MaxHops"/> links are followed.
/// </summary>
public static class SymlinkWalk
{
    /// <summary>Linux's MAXSYMLINKS.</summary>
    public const int MaxHops = 40;

    /// <summary>
    /// Reads the component at <paramref name="path"/> (relative to the root, no leading '/'): false if it is
    /// missing (the walk ends there), else true with the link target, or null if it is not a link.
    /// </summary>
    public delegate bool LinkReader(string path, out string? target);

    /// <summary>Resolves <paramref name="path"/> (relative to the root, leading '/' ignored) from the root.</summary>
    public static SymlinkWalkResult Resolve(string path, LinkReader readLink, SymlinkScope scope) =>
        Resolve([], path, readLink, scope);

    /// <summary>
    /// Resolves <paramref name="path"/> from the already resolved directory <paramref name="from"/> (its
    /// components, not looked up again), as a relative link target in that directory is.
    /// </summary>
    public static SymlinkWalkResult Resolve(IEnumerable<string> from, string path, LinkReader readLink, SymlinkScope scope)
    {
        var resolved = from.ToList();
        var pending = new Queue<string>(Split(path));
        int hops = 0;
        while (pending.Count > 0)
        {
            var part = pending.Dequeue();
            if (part == ".")
            {
                continue;
            }
            if (part == "..")
            {
                if (resolved.Count > 0)
                {
                    resolved.RemoveAt(resolved.Count - 1);
                }
                else if (scope == SymlinkScope.Confined)
                {
                    return new(SymlinkWalkStatus.AboveRoot, string.Empty);
                }
                continue;
            }
            resolved.Add(part);
            var current = string.Join('/', resolved);
            if (!readLink(current, out var link))
            {
                return new(SymlinkWalkStatus.Missing, current);
            }
            if (link is null)
            {
                continue;
            }
            if (++hops > MaxHops)
            {
                return new(SymlinkWalkStatus.TooManyLinks, current);
            }
            resolved.RemoveAt(resolved.Count - 1);
            if (link.StartsWith('/'))
            {
                if (scope == SymlinkScope.Confined)
                {
                    return new(SymlinkWalkStatus.AbsoluteLink, current);
                }
                resolved.Clear();
            }
            pending = new Queue<string>(Split(link).Concat(pending.ToList()));
        }
        return new(SymlinkWalkStatus.Resolved, string.Join('/', resolved));
    }

    private static string[] Split(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries);
}
