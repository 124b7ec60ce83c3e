using System.Runtime.InteropServices;
using ModelCar.Common;
using ModelCar.Common.IO;

namespace ModelCar.Packing;

public enum ModelEntryKind
{
    File,
    Symlink,
}

/// <summary>
/// A file or symlink of the model directory. <see cref="RelativePath"/> uses '/'. Files carry their
/// identity when scanned (mtime, inode): reading checks the mtime, the re-run record keys on both.
/// </summary>
public sealed record ModelEntry(string RelativePath, ModelEntryKind Kind, string FullPath, long Size, string? LinkTarget, DateTime? ModifiedUtc = null, ulong Inode = 0);

/// <summary>
/// The model directory as it will go into the image: regular files and symlinks (after include/
/// exclude), sorted by ordinal path. Refuses what would make a broken or unsafe image: an empty
/// result, special files (FIFOs, sockets, devices), and symlinks that are absolute or resolve outside
/// the directory. The scan stats, it opens no file: read permission is checked for the files that
/// will be read (<see cref="CheckReadable"/>), before anything is written.
/// </summary>
public sealed class ModelTree
{
    private ModelTree(string root, IReadOnlyList<ModelEntry> entries)
    {
        Root = root;
        Entries = entries;
    }

    public string Root { get; }

    public IReadOnlyList<ModelEntry> Entries { get; }

    public long TotalBytes => Entries.Sum(e => e.Size);

    /// <summary>
    /// A tree that is no local directory (e.g. a Hub repository at a commit): regular files only, whose
    /// <see cref="ModelEntry.FullPath"/> names the source's identity for the layer record.
    /// </summary>
    public static ModelTree FromFiles(string root, IEnumerable<ModelEntry> files)
    {
        var entries = files.ToList();
        if (entries.Any(e => e.Kind != ModelEntryKind.File))
        {
            throw new ArgumentException("only regular files", nameof(files));
        }
        entries.Sort((a, b) => string.CompareOrdinal(a.RelativePath, b.RelativePath));
        return new ModelTree(root, entries);
    }

    public static ModelTree Scan(string directory, PathFilter filter)
    {
        var root = Path.GetFullPath(directory);
        if (!Directory.Exists(root))
        {
            throw new PackingException(File.Exists(root) ? $"model directory '{directory}' is a file, not a directory" : $"model directory '{directory}' does not exist");
        }
        var entries = new List<ModelEntry>();
        Walk(root, string.Empty, filter, entries);
        if (entries.Count == 0)
        {
            throw new PackingException($"model directory '{directory}' has no files to pack" +
                (filter.HasIncludes ? " (after the include/exclude patterns)" : string.Empty), reason: filter.HasIncludes ? PackingReason.NoFileMatchesFilter : null);
        }
        entries.Sort((a, b) => string.CompareOrdinal(a.RelativePath, b.RelativePath));
        var tree = new ModelTree(root, entries);
        tree.CheckSymlinks();
        return tree;
    }

    private static void Walk(string dir, string relDir, PathFilter filter, List<ModelEntry> entries)
    {
        IEnumerable<string> children;
        try
        {
            children = Directory.EnumerateFileSystemEntries(dir).ToList();
        }
        catch (UnauthorizedAccessException e)
        {
            throw new PackingException($"cannot read directory '{dir}': {e.Message}", e);
        }
        foreach (var full in children)
        {
            var name = Path.GetFileName(full);
            var rel = relDir.Length == 0 ? name : relDir + "/" + name;
            var type = FileType.Of(full);
            switch (type)
            {
                case FileType.Kind.Directory:
                    // descend unless a folder pattern ("x/") excludes all of it
                    if (filter.ExcludesFolder(rel))
                    {
                        continue;
                    }
                    Walk(full, rel, filter, entries);
                    break;
                case FileType.Kind.Regular:
                    if (!filter.IsIncluded(rel))
                    {
                        continue;
                    }
                    long size;
                    DateTime modified;
                    try
                    {
                        // stat only (one call): a re-run that takes the file's layer from the record never opens it
                        var info = new FileInfo(full);
                        size = info.Length;
                        modified = info.LastWriteTimeUtc;
                    }
                    catch (Exception e) when (e is UnauthorizedAccessException or IOException)
                    {
                        throw new PackingException($"cannot read model file '{full}': {e.Message}", e);
                    }
                    entries.Add(new ModelEntry(rel, ModelEntryKind.File, full, size, null, modified, FileType.InodeOf(full)));
                    break;
                case FileType.Kind.Symlink:
                    if (!filter.IsIncluded(rel))
                    {
                        continue;
                    }
                    var target = new FileInfo(full).LinkTarget ?? throw new PackingException($"cannot read symlink '{full}'");
                    entries.Add(new ModelEntry(rel, ModelEntryKind.Symlink, full, 0, target));
                    break;
                default:
                    throw new PackingException($"'{full}' is a {type.ToString().ToLowerInvariant()}, not a regular file, directory or symlink: it cannot go into the image");
            }
        }
    }

    /// <summary>
    /// Opens (and closes) each file of <paramref name="entries"/>: the files that are going to be read are
    /// checked for read permission before anything is written (the scan only stats, so that files whose
    /// layers come from the layer record need no permission at all).
    /// </summary>
    public static void CheckReadable(IEnumerable<ModelEntry> entries)
    {
        foreach (var e in entries.Where(e => e.Kind == ModelEntryKind.File))
        {
            try
            {
                using var handle = File.OpenHandle(e.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read);
            }
            catch (Exception x) when (x is UnauthorizedAccessException or IOException)
            {
                throw new PackingException($"cannot read model file '{e.FullPath}': {x.Message}", x);
            }
        }
    }

    /// <summary>
    /// Every symlink must be relative and resolve inside the tree, following other symlinks of the
    /// tree as the kernel would in the container (so "a/../.." through a symlinked "a" is caught).
    /// </summary>
    private void CheckSymlinks()
    {
        var links = Entries.Where(e => e.Kind == ModelEntryKind.Symlink).ToDictionary(e => e.RelativePath, e => e.LinkTarget!, StringComparer.Ordinal);
        foreach (var (path, target) in links)
        {
            if (target.StartsWith('/'))
            {
                throw new PackingException($"symlink '{Path.Combine(Root, path)}' points to the absolute path '{target}': only relative links inside the model directory can go into the image");
            }
            var parent = path.Contains('/') ? path[..path.LastIndexOf('/')] : string.Empty;
            if (!ResolvesInside(links, parent, target))
            {
                throw new PackingException($"symlink '{Path.Combine(Root, path)}' -> '{target}' points outside the model directory");
            }
        }
    }

    /// <summary>
    /// Each entry with the sha256 of what it is (<paramref name="sha256"/>: by <see cref="ModelEntry.FullPath"/>, e.g.
    /// what the one read took): a file its own, a symlink its target's, followed through the tree's other links as
    /// the kernel would (<see cref="SymlinkWalk"/>) — as model_signing hashes what a link points to. A link that does
    /// not end at a file of the tree (outside it, at a directory, a missing name, a loop) is a <see cref="PackingException"/>.
    /// </summary>
    public IEnumerable<(string Path, string Sha256Hex)> EntryDigests(IReadOnlyDictionary<string, string> sha256)
    {
        var byPath = Entries.ToDictionary(e => e.RelativePath, StringComparer.Ordinal);
        var directories = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in Entries)
        {
            for (int slash = e.RelativePath.IndexOf('/'); slash > 0; slash = e.RelativePath.IndexOf('/', slash + 1))
            {
                directories.Add(e.RelativePath[..slash]);
            }
        }
        foreach (var e in Entries)
        {
            var target = e;
            if (e.Kind == ModelEntryKind.Symlink)
            {
                var parent = e.RelativePath.Contains('/') ? e.RelativePath[..e.RelativePath.LastIndexOf('/')] : string.Empty;
                var walk = SymlinkWalk.Resolve(parent.Split('/', StringSplitOptions.RemoveEmptyEntries), e.LinkTarget!, ReadLink, SymlinkScope.Confined);
                if (walk.Status != SymlinkWalkStatus.Resolved || !byPath.TryGetValue(walk.Path, out var found) || found.Kind != ModelEntryKind.File)
                {
                    throw new PackingException($"symlink {e.RelativePath} does not lead to a packed file ({e.LinkTarget}): model_signing could not hash it the same way");
                }
                target = found;
            }
            yield return (e.RelativePath, sha256.TryGetValue(target.FullPath, out var sha)
                ? sha
                : throw new PackingException($"no sha256 was taken for {target.RelativePath}"));
        }

        // names of the tree: its entries (a link's target, or none) and the directories above them
        bool ReadLink(string path, out string? next)
        {
            next = byPath.TryGetValue(path, out var entry) ? entry.LinkTarget : null;
            return entry is not null || directories.Contains(path);
        }
    }

    private static bool ResolvesInside(Dictionary<string, string> links, string parent, string target)
    {
        // parent is a directory of the tree (never a link): its components are the starting point
        var result = SymlinkWalk.Resolve(parent.Split('/', StringSplitOptions.RemoveEmptyEntries), target, ReadLink, SymlinkScope.Confined);
        return result.Status == SymlinkWalkStatus.Resolved;

        // only the tree's symlinks are links: files, directories and names not in the tree are not
        bool ReadLink(string path, out string? next)
        {
            next = links.GetValueOrDefault(path);
            return true;
        }
    }
}

/// <summary>File type without following symlinks (statx(2): same struct layout on every Linux architecture).</summary>
internal static partial class FileType
{
    public enum Kind
    {
        Regular,
        Directory,
        Symlink,
        Fifo,
        Socket,
        CharacterDevice,
        BlockDevice,
        Unknown,
    }

    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, byte[] path, int flags, uint mask, byte[] buffer);

    private const uint StatxIno = 0x100;

    /// <summary>The inode number (0 if the file system does not report one).</summary>
    public static ulong InodeOf(string path)
    {
        var buffer = new byte[256];
        var name = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        if (Statx(AtFdCwd, name, AtSymlinkNoFollow, StatxIno, buffer) != 0)
        {
            throw new PackingException($"cannot stat '{path}': errno {Marshal.GetLastPInvokeError()}");
        }
        return (BitConverter.ToUInt32(buffer, 0) & StatxIno) != 0 ? BitConverter.ToUInt64(buffer, 32) : 0;
    }

    public static Kind Of(string path)
    {
        var buffer = new byte[256];
        var name = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        if (Statx(AtFdCwd, name, AtSymlinkNoFollow, StatxType, buffer) != 0)
        {
            throw new PackingException($"cannot stat '{path}': errno {Marshal.GetLastPInvokeError()}");
        }
        int mode = BitConverter.ToUInt16(buffer, 28) & 0xF000; // stx_mode
        return mode switch
        {
            0x8000 => Kind.Regular,
            0x4000 => Kind.Directory,
            0xA000 => Kind.Symlink,
            0x1000 => Kind.Fifo,
            0xC000 => Kind.Socket,
            0x2000 => Kind.CharacterDevice,
            0x6000 => Kind.BlockDevice,
            _ => Kind.Unknown,
        };
    }
}
