namespace ModelCar.HuggingFace;

/// <summary>
/// Checks on a whole tree listing, before anything is planned from it (hf-fetch and oci-pack's <c>hf://</c> both
/// list through <see cref="HubClient.ListTreeAsync"/>): no negative size, no path that is a file and a directory at
/// once, no path listed twice with different content. A git tree cannot hold any of these, so a listing that does is
/// refused with one line naming the path, instead of a broken image or download.
/// </summary>
public static class TreeListing
{
    /// <summary>The listing without identical repeats; throws <see cref="HubException"/> on the first inconsistency.</summary>
    public static List<TreeEntry> Validate(string repoId, IReadOnlyList<TreeEntry> entries)
    {
        var files = new Dictionary<string, TreeEntry>(StringComparer.Ordinal);
        var directories = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<TreeEntry>(entries.Count);
        foreach (var e in entries)
        {
            if (!e.IsFile)
            {
                if (e.Type == "directory")
                {
                    directories.Add(e.Path.TrimEnd('/'));
                }
                result.Add(e);
                continue;
            }
            long size = e.Lfs?.Size ?? e.Size;
            if (e.Size < 0 || size < 0)
            {
                throw new HubException($"tree listing of {repoId}: '{HubPaths.Printable(e.Path)}' has a negative size ({Math.Min(e.Size, size)})");
            }
            if (files.TryGetValue(e.Path, out var seen))
            {
                if (seen.Size == e.Size && seen.Oid == e.Oid && seen.Lfs?.Oid == e.Lfs?.Oid && seen.Lfs?.Size == e.Lfs?.Size)
                {
                    continue; // the same entry twice (a page repeated): keep one
                }
                throw new HubException($"tree listing of {repoId}: '{HubPaths.Printable(e.Path)}' is listed twice with different content");
            }
            files[e.Path] = e;
            result.Add(e);
            for (int slash = e.Path.IndexOf('/'); slash > 0; slash = e.Path.IndexOf('/', slash + 1))
            {
                directories.Add(e.Path[..slash]);
            }
        }
        foreach (var path in files.Keys)
        {
            if (directories.Contains(path))
            {
                throw new HubException($"tree listing of {repoId}: '{HubPaths.Printable(path)}' is both a file and a directory");
            }
        }
        return result;
    }
}
