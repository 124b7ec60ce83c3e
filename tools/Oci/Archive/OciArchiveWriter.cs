using System.Text;
using Microsoft.Win32.SafeHandles;
using ModelCar.Common.IO;
using ModelCar.Oci.Tar;

namespace ModelCar.Oci.Archive;

/// <summary>
/// Writes an oci-archive (a tar of an OCI image layout: <c>oci-layout</c>, <c>blobs/sha256/&lt;hex&gt;</c>,
/// <c>index.json</c>) as a stream straight into the final file — never a layout directory first.
/// <para>
/// Design (each model byte read once, written once): the blob digest is part of the tar entry
/// name, so it must be known before the header is final. Instead of hashing a layer in a first
/// pass and reading it again in a second, or writing it to a temp file and copying that in, we
/// <b>reserve</b> the entry: the exact layer size is computable without reading data
/// (<see cref="LayerWriter.PredictSize"/>), so each layer gets a fixed region of the archive; the
/// layer tar is streamed into its region (positional writes) while being hashed, and the 512-byte
/// header in front of it is written once the digest is known. Because regions are disjoint, several
/// layers are written (and hashed) in parallel on separate cores.
/// </para>
/// <para>
/// The archive is built under a hidden temp name in the target directory and renamed into place by
/// <see cref="Commit"/> (after fsync), so a crash or error never leaves a complete-looking archive;
/// <see cref="Dispose"/> without commit deletes the temp file. The result is 0644 whatever the umask.
/// Headers are GNU tar (base-256 sizes for blobs of 8 GiB and more), owner 0:0, no user/group
/// names, mtime fixed by the caller.
/// </para>
/// </summary>
public sealed class OciArchiveWriter : IDisposable
{
    private const int Block = 512;
    private readonly string _path;
    private readonly string _tempPath;
    private readonly SafeFileHandle _handle;
    private readonly long _mtime;
    private readonly HashSet<Digest> _blobs = [];
    private readonly object _lock = new();
    private long _end;
    private bool _committed;

    public OciArchiveWriter(string path, DateTimeOffset modificationTime)
    {
        _path = Path.GetFullPath(path);
        _mtime = modificationTime.ToUnixTimeSeconds();
        var dir = Path.GetDirectoryName(_path)!;
        if (!Directory.Exists(dir))
        {
            throw new DirectoryNotFoundException($"directory '{dir}' for the oci-archive does not exist");
        }
        _tempPath = Files.TempNameFor(_path);
        // FileShare.None: the temp file is locked while this run lives (see RemoveStaleTempFiles)
        _handle = File.OpenHandle(_tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        Files.SetMode(_tempPath, Files.FileMode644);
        AddFile("oci-layout", OciJson.Serialize(new OciLayoutMarker(), OciJson.LayoutMarker));
        AddDirectory("blobs/");
        AddDirectory("blobs/sha256/");
    }

    public string TempPath => _tempPath;

    /// <summary>Bytes reserved or written so far.</summary>
    public long Length => Interlocked.Read(ref _end);

    public bool HasBlob(Digest digest)
    {
        lock (_lock)
        {
            return _blobs.Contains(digest);
        }
    }

    public void AddDirectory(string name)
    {
        long at = Reserve(0);
        WriteHeader(at, name, 0, isDirectory: true);
    }

    /// <summary>A small file (oci-layout, index.json).</summary>
    public void AddFile(string name, ReadOnlySpan<byte> content)
    {
        long at = Reserve(content.Length);
        WriteHeader(at, name, content.Length, isDirectory: false);
        RandomAccess.Write(_handle, content, at + Block);
    }

    /// <summary>A blob held in memory (config, manifest). Skipped if that digest is already in the archive.</summary>
    public Descriptor AddBlob(ReadOnlySpan<byte> content, string mediaType, IReadOnlyDictionary<string, string>? annotations = null)
    {
        var digest = Digest.Sha256(content);
        if (TryClaim(digest))
        {
            AddFile(BlobName(digest), content);
        }
        return new Descriptor { MediaType = mediaType, Digest = digest, Size = content.Length, Annotations = annotations };
    }

    /// <summary>
    /// A writer for a blob of known digest and size (a base blob: the caller's source verifies it), its region
    /// reserved now; null when that digest is already in the archive.
    /// </summary>
    public IBlobWriter? OpenBlobWriter(Descriptor descriptor) => TryClaim(descriptor.Digest) ? ReserveBlob(descriptor.Size).OpenWriter() : null;

    /// <summary>Reserves the region of one blob whose size is known but whose digest is not yet.</summary>
    public BlobSlot ReserveBlob(long size) => new(this, Reserve(size), size);

    /// <summary>
    /// Ends the archive (two zero blocks), syncs it to disk and renames it into place. Nothing
    /// is visible under the final name before this.
    /// </summary>
    public void Commit()
    {
        long at = Reserve(0);
        // end of archive: two zero blocks (the header slot reserved above is the first one)
        RandomAccess.Write(_handle, new byte[2 * Block], at);
        RandomAccess.FlushToDisk(_handle);
        File.Move(_tempPath, _path, overwrite: true); // renamed while still locked: no cleaner can take it for stale
        _committed = true;
        _handle.Dispose();
        Files.SetMode(_path, Files.FileMode644);
    }

    /// <summary>
    /// Deletes temp archives (<c>.NAME.*.tmp</c> beside <paramref name="path"/>) that earlier runs left when
    /// they were killed. A live writer keeps its temp file locked, so only dead runs' files go.
    /// Returns how many files and bytes were removed.
    /// </summary>
    public static (int Files, long Bytes) RemoveStaleTempFiles(string path)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        var prefix = "." + Path.GetFileName(full) + ".";
        int count = 0;
        long bytes = 0;
        if (!Directory.Exists(dir))
        {
            return (0, 0);
        }
        foreach (var tmp in Directory.EnumerateFiles(dir, prefix + "*.tmp"))
        {
            var middle = Path.GetFileName(tmp)[prefix.Length..^".tmp".Length];
            if (middle.Length != 32 || !middle.All(char.IsAsciiHexDigitLower))
            {
                continue; // not a name Files.TempNameFor gives
            }
            var length = new FileInfo(tmp).Length;
            if (FileLock.TryDeleteIfStale(tmp))
            {
                count++;
                bytes += length;
            }
        }
        return (count, bytes);
    }

    public void Dispose()
    {
        if (!_handle.IsClosed)
        {
            _handle.Dispose();
        }
        if (!_committed)
        {
            Files.TryDelete(_tempPath);
        }
    }

    public static string BlobName(Digest digest) => $"blobs/{digest.Algorithm}/{digest.Encoded}";

    private bool TryClaim(Digest digest)
    {
        lock (_lock)
        {
            return _blobs.Add(digest);
        }
    }

    /// <summary>Reserves header + data (rounded to 512) and returns the header offset.</summary>
    private long Reserve(long dataSize)
    {
        long total = Block + (dataSize + Block - 1) / Block * Block;
        lock (_lock)
        {
            long at = _end;
            _end += total;
            return at;
        }
    }

    private void WriteHeader(long at, string name, long size, bool isDirectory)
    {
        // Padding after the data is never written: it stays a hole (zeros) until Commit's end-of-archive
        // blocks extend the file past it. No SetLength here — with parallel writers it could truncate.
        RandomAccess.Write(_handle, BuildHeader(name, size, isDirectory, _mtime), at);
    }

    /// <summary>A GNU tar header (magic "ustar  "), mode 0644/0755, owner 0:0, base-256 size from 8 GiB on.</summary>
    public static byte[] BuildHeader(string name, long size, bool isDirectory, long mtime)
    {
        var h = new byte[Block];
        var nameBytes = Encoding.UTF8.GetBytes(name);
        if (nameBytes.Length > 100)
        {
            throw new ArgumentException($"tar entry name '{name}' is longer than 100 bytes", nameof(name));
        }
        nameBytes.CopyTo(h, 0);
        Octal(h, 100, 8, isDirectory ? 0b111_101_101 : 0b110_100_100);
        Octal(h, 108, 8, 0);
        Octal(h, 116, 8, 0);
        if (size < (1L << 33))
        {
            Octal(h, 124, 12, size);
        }
        else
        {
            h[124] = 0x80;
            for (int i = 0; i < 8; i++)
            {
                h[135 - i] = (byte)(size >> (8 * i));
            }
        }
        Octal(h, 136, 12, mtime);
        h[156] = (byte)(isDirectory ? '5' : '0');
        Encoding.ASCII.GetBytes("ustar  \0").CopyTo(h, 257);
        for (int i = 148; i < 156; i++)
        {
            h[i] = (byte)' ';
        }
        long sum = 0;
        foreach (var b in h)
        {
            sum += b;
        }
        Octal(h, 148, 7, sum); // 6 digits + NUL, then the space already there
        return h;
    }

    private static void Octal(byte[] h, int offset, int length, long value)
    {
        // length-1 octal digits, zero-padded, then NUL
        var s = Convert.ToString(value, 8).PadLeft(length - 1, '0');
        if (s.Length > length - 1)
        {
            throw new ArgumentOutOfRangeException(nameof(value), $"{value} does not fit a {length}-byte tar field");
        }
        Encoding.ASCII.GetBytes(s).CopyTo(h, offset);
        h[offset + length - 1] = 0;
    }

    /// <summary>A reserved blob region: write exactly <see cref="Size"/> bytes to <see cref="Open"/>, then <see cref="Complete"/>.</summary>
    public sealed class BlobSlot
    {
        private readonly OciArchiveWriter _owner;
        private readonly long _header;

        internal BlobSlot(OciArchiveWriter owner, long header, long size)
        {
            _owner = owner;
            _header = header;
            Size = size;
        }

        public long Size { get; }

        /// <summary>Positional writes into this slot's data region (safe to use in parallel with other slots).</summary>
        public PositionalWriteStream Open() => new(_owner._handle, _header + Block);

        /// <summary>This slot as an <see cref="IBlobWriter"/>: commit writes the header; abandoned slots stay zeros (the archive is not committed then).</summary>
        public IBlobWriter OpenWriter() => new SlotWriter(this);

        public void Complete(Digest digest, long written)
        {
            if (written != Size)
            {
                throw new InvalidOperationException($"blob {digest}: {written} bytes written into a slot of {Size}");
            }
            _owner.TryClaim(digest);
            _owner.WriteHeader(_header, BlobName(digest), Size, isDirectory: false);
        }
    }

    private sealed class SlotWriter(BlobSlot slot) : IBlobWriter
    {
        private readonly PositionalWriteStream _out = slot.Open();

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            if (_out.Length + data.Length > slot.Size)
            {
                throw new InvalidOperationException($"{_out.Length + data.Length} bytes written into an archive slot of {slot.Size}");
            }
            _out.Write(data.Span);
            return ValueTask.CompletedTask;
        }

        public Task CommitAsync(Digest digest, CancellationToken ct)
        {
            slot.Complete(digest, _out.Length);
            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
