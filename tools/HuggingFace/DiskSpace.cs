using ModelCar.Common;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

/// <summary>Free-space check before a download: what is still to be written vs what the file system has.</summary>
public static class DiskSpace
{
    /// <summary>
    /// Bytes still to be written for <paramref name="pending"/>: a file already at its final path with
    /// the right size counts as present (it will be verified, not fetched), and so does a partial
    /// download's .incomplete file (preallocated, so its blocks are already taken).
    /// </summary>
    public static long StillNeeded(LocalState store, IEnumerable<FilePlan> pending)
    {
        long needed = 0;
        foreach (var plan in pending)
        {
            long present = 0;
            var final = new FileInfo(plan.LocalPath);
            if (final.Exists && final.Length == plan.Size)
            {
                present = plan.Size;
            }
            else if (new FileInfo(store.IncompletePath(plan.RepoPath)) is { Exists: true } partial)
            {
                present = Math.Min(partial.Length, plan.Size);
            }
            needed += plan.Size - present;
        }
        return needed;
    }

    /// <summary>Bytes an unprivileged writer can still use on the file system holding <paramref name="dir"/> (statvfs f_bavail × f_frsize).</summary>
    public static long Available(string dir) => new DriveInfo(dir).AvailableFreeSpace;

    /// <exception cref="HubException">needed &gt; available: one line with both numbers.</exception>
    public static void Check(string dir, long needed, long available)
    {
        if (needed > available)
        {
            throw new HubException($"not enough free space under {dir}: {SizeParser.Format(needed)} ({needed} bytes) still to download, "
                + $"{SizeParser.Format(available)} ({available} bytes) available; free space, use a bigger volume, or leave files out with exclude patterns");
        }
    }
}
