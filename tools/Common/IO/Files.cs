using System.Text;

namespace ModelCar.Common.IO;

/// <summary>
/// Files written for other pods: 0644 files, 0755 directories, whatever the process umask
/// (modes are set with chmod after creation, which the umask does not touch).
/// </summary>
public static class Files
{
    public const UnixFileMode FileMode644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    public const UnixFileMode DirMode755 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>Creates the directory and any missing parents, each 0755.</summary>
    public static void EnsureDirectory(string path)
    {
        var full = Path.GetFullPath(path);
        if (System.IO.Directory.Exists(full))
        {
            return;
        }
        var parent = Path.GetDirectoryName(full);
        if (parent is not null && !System.IO.Directory.Exists(parent))
        {
            EnsureDirectory(parent);
        }
        try
        {
            System.IO.Directory.CreateDirectory(full);
        }
        catch (IOException) when (System.IO.Directory.Exists(full))
        {
            return; // created concurrently
        }
        SetMode(full, DirMode755);
    }

    /// <summary>Opens a new file for writing (truncating any existing one) and sets it to 0644.</summary>
    public static FileStream CreateFile(string path, int bufferSize = 1 << 20, FileMode mode = FileMode.Create)
    {
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = mode,
            Access = FileAccess.Write,
            Share = FileShare.Read,
            BufferSize = bufferSize,
            Options = FileOptions.Asynchronous,
        });
        SetMode(path, FileMode644);
        return stream;
    }

    /// <summary>Opens a file for reading with a large buffer, sequential access.</summary>
    public static FileStream OpenRead(string path, int bufferSize = 1 << 20) =>
        new(path, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.Read,
            BufferSize = bufferSize,
            Options = FileOptions.SequentialScan | FileOptions.Asynchronous,
        });

    /// <summary>Writes through a temp file in the same directory, then renames: readers never see half a file.</summary>
    public static void WriteAllBytesAtomic(string path, ReadOnlySpan<byte> bytes)
    {
        var tmp = TempNameFor(path);
        try
        {
            using (var fs = CreateFile(tmp, 4096))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    public static void WriteAllTextAtomic(string path, string text) => WriteAllBytesAtomic(path, Encoding.UTF8.GetBytes(text));

    /// <summary>A unique hidden temp name beside <paramref name="path"/> (same file system, so rename is atomic).</summary>
    public static string TempNameFor(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        return Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
    }

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public static void SetMode(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }
}
