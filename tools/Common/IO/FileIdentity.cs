using System.Runtime.InteropServices;

namespace ModelCar.Common.IO;

/// <summary>
/// How a file looked at one moment, from one stat (no open: a file without read permission has one too):
/// size, last-write time in UTC ticks (as <see cref="File.GetLastWriteTimeUtc(string)"/> gives it) and inode.
/// Two equal identities mean "no write since" as far as a cache can tell without reading (the layer record
/// and hf-fetch's verified record rely on it; a rewrite that restores size and mtime on the same inode is not seen).
/// </summary>
public readonly record struct FileIdentity(long Size, long MtimeTicks, ulong Inode)
{
    /// <summary>The identity of the regular file (symlinks followed) at <paramref name="path"/>, or null if it cannot be stat'ed.</summary>
    public static FileIdentity? Of(string path)
    {
        var info = new FileInfo(path);
        try
        {
            if (!info.Exists)
            {
                return null;
            }
            return new FileIdentity(info.Length, info.LastWriteTimeUtc.Ticks, InodeOf(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private const int AtFdCwd = -100;
    private const uint StatxIno = 0x100;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, byte[] path, int flags, uint mask, byte[] buffer);

    /// <summary>The inode number (statx(2), the same layout on every Linux architecture); 0 when unknown.</summary>
    public static ulong InodeOf(string path)
    {
        var buffer = new byte[256];
        var name = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        if (Statx(AtFdCwd, name, 0, StatxIno, buffer) != 0)
        {
            return 0;
        }
        return (BitConverter.ToUInt32(buffer, 0) & StatxIno) != 0 ? BitConverter.ToUInt64(buffer, 32) : 0;
    }
}
