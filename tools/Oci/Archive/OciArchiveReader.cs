using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;
using ModelCar.Oci.Layout;

namespace ModelCar.Oci.Archive;

/// <summary>
/// An oci-archive (a tar of an OCI image layout) read in place: the tar headers are scanned once
/// into an index of entry name → (data offset, size), and blobs are served as read-only windows
/// on the file. Nothing is unpacked, so disk use does not double (skopeo untars the whole archive).
/// Understands ustar, GNU long names ('L'), PAX headers ('x': path, size) and GNU base-256 sizes
/// (entries over 8 GiB). One file handle is shared; reads are positional, so blobs can be read
/// concurrently.
/// </summary>
public sealed class OciArchiveReader : IImageSource
{
    private const int BlockSize = 512;
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, TarEntryLocation> _entries;

    private OciArchiveReader(string path, SafeFileHandle handle, Dictionary<string, TarEntryLocation> entries)
    {
        ArchivePath = path;
        _handle = handle;
        _entries = entries;
    }

    public string ArchivePath { get; }

    public string Description => $"oci-archive:{ArchivePath}";

    /// <summary>Entry names (normalized: no leading "./" or "/") and where their data lies.</summary>
    public IReadOnlyDictionary<string, TarEntryLocation> Entries => _entries;

    public static OciArchiveReader Open(string path)
    {
        var full = Path.GetFullPath(path);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(full, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new OciException($"oci-archive '{path}' does not exist");
        }
        catch (UnauthorizedAccessException)
        {
            throw new OciException($"oci-archive '{path}' is not readable (permission denied)");
        }
        try
        {
            var entries = Scan(handle, full);
            var reader = new OciArchiveReader(full, handle, entries);
            if (!entries.ContainsKey("oci-layout"))
            {
                throw new InvalidDataException($"'{path}' is not an oci-archive: no oci-layout entry");
            }
            if (!entries.ContainsKey("index.json"))
            {
                throw new InvalidDataException($"'{path}' is not an oci-archive: no index.json entry");
            }
            return reader;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Walks the tar headers once. Later entries with the same name win (tar semantics).</summary>
    public static Dictionary<string, TarEntryLocation> Scan(SafeFileHandle handle, string path)
    {
        var entries = new Dictionary<string, TarEntryLocation>(StringComparer.Ordinal);
        long fileLength = RandomAccess.GetLength(handle);
        var header = new byte[BlockSize];
        long offset = 0;
        string? longName = null;
        string? paxPath = null;
        long? paxSize = null;
        while (true)
        {
            if (offset + BlockSize > fileLength)
            {
                if (offset == fileLength && entries.Count > 0)
                {
                    break; // no end-of-archive blocks: tolerated, as GNU tar does
                }
                throw new InvalidDataException($"'{path}' is not a valid tar file: truncated header at offset {offset}");
            }
            ReadExactlyAt(handle, header, offset);
            if (header.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                break; // end-of-archive marker
            }
            if (!ChecksumOk(header))
            {
                throw new InvalidDataException($"'{path}' is not a valid tar file: bad header checksum at offset {offset}");
            }
            byte type = header[156];
            long size = paxSize ?? ParseNumber(header.AsSpan(124, 12), path, offset);
            long dataOffset = offset + BlockSize;
            if (size < 0 || dataOffset + size > fileLength)
            {
                throw new InvalidDataException($"'{path}' is truncated: entry at offset {offset} needs {size} bytes");
            }
            long next = dataOffset + Align(size);
            switch (type)
            {
                case (byte)'L': // GNU long name for the next entry
                    longName = TrimNul(ReadString(handle, dataOffset, size));
                    break;
                case (byte)'K': // GNU long link name: not needed
                    break;
                case (byte)'x': // PAX extended header for the next entry
                    ParsePax(ReadString(handle, dataOffset, size), out paxPath, out paxSize);
                    break;
                case (byte)'g': // PAX global header: nothing we need
                    break;
                default:
                    string name = paxPath ?? longName ?? HeaderName(header);
                    name = Normalize(name);
                    if (type is (byte)'0' or 0 or (byte)'7')
                    {
                        entries[name] = new TarEntryLocation(dataOffset, size);
                    }
                    else if (type == (byte)'1')
                    {
                        // hard link: same content as an earlier entry
                        var target = Normalize(TrimNul(Encoding.UTF8.GetString(header.AsSpan(157, 100))));
                        if (entries.TryGetValue(target, out var loc))
                        {
                            entries[name] = loc;
                        }
                    }
                    longName = null;
                    paxPath = null;
                    paxSize = null;
                    break;
            }
            offset = next;
        }
        return entries;
    }

    private static long Align(long size) => (size + BlockSize - 1) / BlockSize * BlockSize;

    private static void ReadExactlyAt(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[done..], offset + done);
            if (n == 0)
            {
                throw new EndOfStreamException($"unexpected end of file at offset {offset + done}");
            }
            done += n;
        }
    }

    private static string ReadString(SafeFileHandle handle, long offset, long size)
    {
        if (size > 1 << 20)
        {
            throw new InvalidDataException($"tar extended header of {size} bytes at offset {offset} is too large");
        }
        var bytes = new byte[size];
        ReadExactlyAt(handle, bytes, offset);
        return Encoding.UTF8.GetString(bytes);
    }

    private static bool ChecksumOk(ReadOnlySpan<byte> header)
    {
        long stored;
        try
        {
            stored = ParseOctal(header.Slice(148, 8));
        }
        catch (FormatException)
        {
            return false;
        }
        long unsigned = 0;
        long signed = 0;
        for (int i = 0; i < BlockSize; i++)
        {
            byte b = i is >= 148 and < 156 ? (byte)' ' : header[i];
            unsigned += b;
            signed += (sbyte)b;
        }
        return stored == unsigned || stored == signed;
    }

    /// <summary>An octal number, or GNU base-256 (high bit of the first byte set).</summary>
    internal static long ParseNumber(ReadOnlySpan<byte> field, string path, long offset)
    {
        if ((field[0] & 0x80) != 0)
        {
            if ((field[0] & 0x40) != 0)
            {
                throw new InvalidDataException($"'{path}': negative size in tar header at offset {offset}");
            }
            long value = field[0] & 0x3F;
            for (int i = 1; i < field.Length; i++)
            {
                if (value > (long.MaxValue >> 8))
                {
                    throw new InvalidDataException($"'{path}': size overflow in tar header at offset {offset}");
                }
                value = (value << 8) | field[i];
            }
            return value;
        }
        try
        {
            return ParseOctal(field);
        }
        catch (FormatException)
        {
            throw new InvalidDataException($"'{path}' is not a valid tar file: bad size field at offset {offset}");
        }
    }

    private static long ParseOctal(ReadOnlySpan<byte> field)
    {
        long value = 0;
        bool any = false;
        foreach (byte b in field)
        {
            if (b is 0 or (byte)' ')
            {
                if (any)
                {
                    break;
                }
                continue;
            }
            if (b is < (byte)'0' or > (byte)'7')
            {
                throw new FormatException("not octal");
            }
            value = (value << 3) | (uint)(b - '0');
            any = true;
        }
        return value;
    }

    private static string HeaderName(ReadOnlySpan<byte> header)
    {
        string name = TrimNul(Encoding.UTF8.GetString(header.Slice(0, 100)));
        bool ustar = header.Slice(257, 5).SequenceEqual("ustar"u8);
        if (ustar && header[345] != 0 && !header.Slice(257, 8).SequenceEqual("ustar  \0"u8))
        {
            string prefix = TrimNul(Encoding.UTF8.GetString(header.Slice(345, 155)));
            if (prefix.Length > 0)
            {
                name = prefix + "/" + name;
            }
        }
        return name;
    }

    private static void ParsePax(string text, out string? path, out long? size)
    {
        path = null;
        size = null;
        int pos = 0;
        // records: "<len> <key>=<value>\n", len counts the whole record in bytes
        var bytes = Encoding.UTF8.GetBytes(text);
        while (pos < bytes.Length)
        {
            int space = Array.IndexOf(bytes, (byte)' ', pos);
            if (space < 0)
            {
                break;
            }
            if (!int.TryParse(Encoding.ASCII.GetString(bytes, pos, space - pos), NumberStyles.None, CultureInfo.InvariantCulture, out int len) || len <= 0 || pos + len > bytes.Length)
            {
                throw new InvalidDataException("malformed PAX extended header");
            }
            var record = Encoding.UTF8.GetString(bytes, space + 1, pos + len - space - 2);
            int eq = record.IndexOf('=');
            if (eq > 0)
            {
                var key = record[..eq];
                var value = record[(eq + 1)..];
                if (key == "path")
                {
                    path = value;
                }
                else if (key == "size" && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long s))
                {
                    size = s;
                }
            }
            pos += len;
        }
    }

    private static string TrimNul(string s)
    {
        int nul = s.IndexOf('\0');
        return nul < 0 ? s : s[..nul];
    }

    internal static string Normalize(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal))
        {
            name = name[2..];
        }
        return name.TrimStart('/');
    }

    public ImageIndex ReadIndex()
    {
        var loc = _entries["index.json"];
        if (loc.Size > OciJson.MaxManifestBytes)
        {
            throw new InvalidDataException($"{Description}: index.json is {loc.Size} bytes");
        }
        var bytes = new byte[loc.Size];
        ReadExactlyAt(_handle, bytes, loc.Offset);
        return OciJson.Deserialize(bytes, OciJson.Index, $"{Description}: index.json");
    }

    public Descriptor ResolveRoot(string? reference) => OciLayout.ResolveRoot(ReadIndex(), reference, Description);

    public bool HasBlob(Digest digest) => _entries.ContainsKey(BlobEntryName(digest));

    public static string BlobEntryName(Digest digest) => $"blobs/{digest.Algorithm}/{digest.Encoded}";

    public Stream OpenBlob(Descriptor descriptor)
    {
        var name = BlobEntryName(descriptor.Digest);
        if (!_entries.TryGetValue(name, out var loc))
        {
            throw new BlobNotFoundException($"{Description}: blob {descriptor.Digest} is missing (no entry {name})");
        }
        return OpenEntry(loc);
    }

    /// <summary>A read-only window on an entry's data.</summary>
    public Stream OpenEntry(TarEntryLocation location) => new WindowStream(_handle, location.Offset, location.Size);

    public void Dispose() => _handle.Dispose();

    /// <summary>Positional read-only stream over [offset, offset+length) of a shared file handle.</summary>
    private sealed class WindowStream(SafeFileHandle handle, long start, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = value >= 0 && value <= length ? value : throw new ArgumentOutOfRangeException(nameof(value));
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int want = (int)Math.Min(buffer.Length, length - _position);
            if (want <= 0)
            {
                return 0;
            }
            int n = RandomAccess.Read(handle, buffer[..want], start + _position);
            if (n == 0)
            {
                throw new EndOfStreamException("oci-archive ended inside an entry (file truncated while reading?)");
            }
            _position += n;
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int want = (int)Math.Min(buffer.Length, length - _position);
            if (want <= 0)
            {
                return 0;
            }
            int n = await RandomAccess.ReadAsync(handle, buffer[..want], start + _position, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException("oci-archive ended inside an entry (file truncated while reading?)");
            }
            _position += n;
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch
            {
                SeekOrigin.Begin => offset,
                SeekOrigin.Current => _position + offset,
                _ => length + offset,
            };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>Where an archive entry's data lies in the tar file.</summary>
public readonly record struct TarEntryLocation(long Offset, long Size);
