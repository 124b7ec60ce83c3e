using System.Formats.Tar;

namespace ModelCar.Oci.Tar;

public enum LayerEntryKind
{
    Directory,
    File,
    Symlink,
}

/// <summary>
/// One entry of a layer tar. <see cref="TarPath"/> is relative to the image root without a leading
/// slash ("models/sub/a.bin"); directories have no trailing slash here.
/// </summary>
public sealed record LayerEntry(string TarPath, LayerEntryKind Kind, string? SourcePath = null, long Size = 0, string? LinkTarget = null);

/// <summary>Ownership, modes and time stamped on every entry (nothing taken from the host file system).</summary>
public sealed record LayerEntryAttributes
{
    public int Uid { get; init; }
    public int Gid { get; init; }
    public DateTimeOffset ModificationTime { get; init; } = DateTimeOffset.UnixEpoch;
    public UnixFileMode FileMode { get; init; } = (UnixFileMode)0b110_100_100; // 0644
    public UnixFileMode DirectoryMode { get; init; } = (UnixFileMode)0b111_101_101; // 0755
}

/// <summary>
/// Writes a reproducible, uncompressed layer tar in GNU format.
/// <para>
/// Why System.Formats.Tar and not SharpCompress: its <see cref="TarWriter"/> writes
/// <see cref="TarEntryFormat.Gnu"/> headers with base-256 (binary) sizes for files of 8 GiB and more
/// and GNU long-name ('L') records, which is what the container tool chain reads everywhere (Clair
/// ignores a PAX <c>size</c> record, and ustar caps at 8 GiB). It also lets us set every header field
/// (uid/gid, mode, mtime) and leaves uname/gname/atime/ctime empty, so the bytes depend only on our
/// inputs. SharpCompress's tar writer targets ustar/PAX-less archives, gives no control over those
/// fields, and is an extra package; the BCL writer is AOT-clean and streams the file data through
/// without buffering.
/// </para>
/// <para>
/// Entry data is copied straight from each source file into <c>output</c>: each model byte is read
/// once. The caller hashes on the output side (<see cref="HashingWriteStream"/>).
/// </para>
/// </summary>
public static class LayerWriter
{
    private const int Block = 512;

    /// <summary>Writes the entries, in the given order, as one tar stream (with the end-of-archive blocks).</summary>
    public static void Write(IReadOnlyList<LayerEntry> entries, Stream output, LayerEntryAttributes attributes, Action<long>? progress = null, CancellationToken ct = default)
    {
        using var writer = new TarWriter(output, TarEntryFormat.Gnu, leaveOpen: true);
        foreach (var entry in entries)
        {
            ct.ThrowIfCancellationRequested();
            var tarEntry = CreateEntry(entry, attributes);
            if (entry.Kind == LayerEntryKind.File)
            {
                using var data = OpenSource(entry);
                tarEntry.DataStream = progress is null ? data : new ProgressReadStream(data, progress, ct);
                writer.WriteEntry(tarEntry);
            }
            else
            {
                writer.WriteEntry(tarEntry);
            }
        }
    }

    /// <summary>
    /// The exact byte length <see cref="Write"/> will produce, computed without reading any file data:
    /// each GNU entry's header records (including long-name records) do not depend on the data size
    /// (sizes ≥ 8 GiB go base-256 into the same 12-byte field), so the length is the headers of a
    /// zero-size copy of each entry plus each size rounded up to 512.
    /// </summary>
    public static long PredictSize(IReadOnlyList<LayerEntry> entries, LayerEntryAttributes attributes)
    {
        var counter = new CountingStream();
        using (var writer = new TarWriter(counter, TarEntryFormat.Gnu, leaveOpen: true))
        {
            foreach (var entry in entries)
            {
                var tarEntry = CreateEntry(entry, attributes);
                writer.WriteEntry(tarEntry);
            }
        }
        long data = entries.Where(e => e.Kind == LayerEntryKind.File).Sum(e => (e.Size + Block - 1) / Block * Block);
        return counter.Length + data;
    }

    private static GnuTarEntry CreateEntry(LayerEntry entry, LayerEntryAttributes a)
    {
        var (type, name, mode) = entry.Kind switch
        {
            LayerEntryKind.Directory => (TarEntryType.Directory, entry.TarPath + "/", a.DirectoryMode),
            LayerEntryKind.File => (TarEntryType.RegularFile, entry.TarPath, a.FileMode),
            LayerEntryKind.Symlink => (TarEntryType.SymbolicLink, entry.TarPath, (UnixFileMode)0b111_111_111),
            _ => throw new ArgumentOutOfRangeException(nameof(entry)),
        };
        var e = new GnuTarEntry(type, name)
        {
            Uid = a.Uid,
            Gid = a.Gid,
            Mode = mode,
            ModificationTime = a.ModificationTime,
            // no atime/ctime, no user/group names: only what we set goes into the bytes
            AccessTime = default,
            ChangeTime = default,
            UserName = string.Empty,
            GroupName = string.Empty,
        };
        if (entry.Kind == LayerEntryKind.Symlink)
        {
            e.LinkName = entry.LinkTarget ?? throw new ArgumentException($"symlink {entry.TarPath} has no target", nameof(entry));
        }
        return e;
    }

    private static FileStream OpenSource(LayerEntry entry)
    {
        var path = entry.SourcePath ?? throw new ArgumentException($"file {entry.TarPath} has no source", nameof(entry));
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Read,
            Share = FileShare.Read,
            BufferSize = 0, // the tar writer copies in large chunks through ProgressReadStream; no double buffering
            Options = FileOptions.SequentialScan,
        });
        if (stream.Length != entry.Size)
        {
            stream.Dispose();
            throw new IOException($"'{path}' changed size while packing ({entry.Size} bytes when scanned, {stream.Length} now)");
        }
        return stream;
    }

    /// <summary>Counts bytes written and discards them.</summary>
    private sealed class CountingStream : Stream
    {
        private long _length;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => _length += count;
        public override void Write(ReadOnlySpan<byte> buffer) => _length += buffer.Length;
    }

    /// <summary>
    /// Seekable read-through wrapper (the tar writer needs Length) that reports progress, honours
    /// cancellation, and makes CopyTo use 1 MiB reads instead of the default 80 KiB.
    /// </summary>
    private sealed class ProgressReadStream(FileStream inner, Action<long> progress, CancellationToken ct) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            ct.ThrowIfCancellationRequested();
            int n = inner.Read(buffer);
            if (n > 0)
            {
                progress(n);
            }
            return n;
        }

        public override void CopyTo(Stream destination, int bufferSize) => base.CopyTo(destination, Math.Max(bufferSize, 1 << 20));

        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
