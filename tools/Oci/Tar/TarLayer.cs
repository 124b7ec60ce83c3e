using System.Formats.Tar;

namespace ModelCar.Oci.Tar;

/// <summary>A source file changed (size, mtime, short read) while its layer was being generated.</summary>
public sealed class SourceChangedException(string message) : IOException(message);

/// <summary>
/// A file's bytes came in but do not match the hash its source promised (e.g. a Hub file against its tree
/// listing): the layer read is void. Fetching again may help (a body corrupted on the way).
/// </summary>
public sealed class SourceCorruptedException(string message, string file, string expected, string actual) : IOException(message)
{
    public string File { get; } = file;
    public string Expected { get; } = expected;
    public string Actual { get; } = actual;
}

/// <summary>
/// Where a <see cref="TarLayer"/>'s file segments come from when not from local files (e.g. a Hub file
/// streamed over HTTP). The source checks its own bytes (size, hash) and throws
/// <see cref="SourceChangedException"/> or <see cref="SourceCorruptedException"/>.
/// </summary>
public interface ILayerFileSource
{
    /// <summary>The bytes of <paramref name="entry"/>'s file from <paramref name="offset"/> to its end.</summary>
    Stream Open(LayerEntry entry, long offset, CancellationToken ct);
}

/// <summary>
/// A layer tar that exists only as a function of its entries: a list of segments (header records,
/// a file's byte range, zero padding, the end-of-archive blocks) whose sizes are all known before
/// any file data is read. <see cref="OpenAt"/> maps any offset to a segment and a file position, so
/// a destination that lost bytes re-reads just those bytes from the model file (no temp copy).
/// <para>
/// The header records are the bytes .NET's <see cref="TarWriter"/> (GNU format) writes for the
/// entry — taken from the writer itself, which is stopped when it starts to copy the data — so the
/// layer is byte-identical to writing the entries through a <see cref="TarWriter"/>: one tar writer.
/// </para>
/// <para>
/// Every file is checked while read: its size must be what the scan saw (and its mtime, when the
/// entry carries one) when it is opened and again after its last byte, and it must not end early;
/// otherwise the read fails with <see cref="SourceChangedException"/>.
/// </para>
/// </summary>
public sealed class TarLayer : IRereadableBlob
{
    private const int Block = 512;
    private static readonly Lazy<int> TrailerLength = new(MeasureTrailer);
    private readonly Segment[] _segments;
    private readonly long[] _starts;
    private readonly ILayerFileSource? _files;

    /// <param name="files">Where the file segments come from; null: the entries' local <see cref="LayerEntry.SourcePath"/> files.</param>
    public TarLayer(IReadOnlyList<LayerEntry> entries, LayerEntryAttributes attributes, ILayerFileSource? files = null)
    {
        Entries = entries;
        _files = files;
        var segments = new List<Segment>();
        var fileOffsets = new List<(LayerEntry, long)>();
        long position = 0;
        foreach (var entry in entries)
        {
            var header = HeaderOf(entry, attributes);
            segments.Add(Segment.Bytes(header));
            position += header.Length;
            if (entry.Kind == LayerEntryKind.File)
            {
                fileOffsets.Add((entry, position));
            }
            if (entry.Kind == LayerEntryKind.File && entry.Size > 0)
            {
                segments.Add(Segment.File(entry));
                long pad = (Block - entry.Size % Block) % Block;
                if (pad > 0)
                {
                    segments.Add(Segment.Zeros(pad));
                }
                position += entry.Size + pad;
            }
        }
        Files = fileOffsets;
        segments.Add(Segment.Zeros(TrailerLength.Value));
        _segments = [.. segments];
        _starts = new long[_segments.Length];
        long at = 0;
        for (int i = 0; i < _segments.Length; i++)
        {
            _starts[i] = at;
            at += _segments[i].Length;
        }
        Size = at;
    }

    public IReadOnlyList<LayerEntry> Entries { get; }

    /// <summary>Each file entry (empty ones too) with the offset of its first byte in the layer, in layer order.</summary>
    public IReadOnlyList<(LayerEntry Entry, long Offset)> Files { get; }

    public long Size { get; }

    /// <summary>The bytes from <paramref name="offset"/> to the end (files opened lazily, one at a time).</summary>
    public Stream OpenAt(long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, Size);
        return new Reader(this, offset, null, default);
    }

    /// <summary>Like <see cref="OpenAt"/>, reporting model bytes read and honouring cancellation.</summary>
    public Stream OpenAt(long offset, Action<long>? progress, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, Size);
        return new Reader(this, offset, progress, ct);
    }

    /// <summary>The header record(s) of one entry exactly as <see cref="TarWriter"/> writes them (long-name records included).</summary>
    public static byte[] HeaderOf(LayerEntry entry, LayerEntryAttributes attributes)
    {
        var tarEntry = LayerWriter.CreateEntry(entry, attributes);
        var capture = new MemoryStream();
        var writer = new TarWriter(new NonSeekable(capture), TarEntryFormat.Gnu, leaveOpen: true);
        if (entry.Kind == LayerEntryKind.File && entry.Size > 0)
        {
            // the writer takes the size from the data stream's length, writes the header, then copies
            // the data: the first read ends the capture, before any data byte
            tarEntry.DataStream = new StopOnRead(entry.Size);
            try
            {
                writer.WriteEntry(tarEntry);
                throw new InvalidOperationException("TarWriter did not read the entry data");
            }
            catch (HeaderWritten)
            {
            }
            // the writer is left as is (not disposed: its end-of-archive blocks must not be captured)
        }
        else
        {
            writer.WriteEntry(tarEntry);
        }
        var bytes = capture.ToArray();
        if (bytes.Length == 0 || bytes.Length % Block != 0)
        {
            throw new InvalidOperationException($"tar header of {entry.TarPath}: {bytes.Length} bytes");
        }
        return bytes;
    }

    private static int MeasureTrailer()
    {
        var ms = new MemoryStream();
        long before;
        using (var writer = new TarWriter(new NonSeekable(ms), TarEntryFormat.Gnu, leaveOpen: true))
        {
            writer.WriteEntry(new GnuTarEntry(TarEntryType.Directory, "x/"));
            before = ms.Length;
        }
        return (int)(ms.Length - before);
    }

    private enum SegmentKind
    {
        Bytes,
        File,
        Zeros,
    }

    private readonly record struct Segment(SegmentKind Kind, long Length, byte[]? Data, LayerEntry? Entry)
    {
        public static Segment Bytes(byte[] data) => new(SegmentKind.Bytes, data.Length, data, null);

        public static Segment File(LayerEntry entry) => new(SegmentKind.File, entry.Size, null, entry);

        public static Segment Zeros(long n) => new(SegmentKind.Zeros, n, null, null);
    }

    private sealed class HeaderWritten : Exception;

    private sealed class StopOnRead(long length) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => 0; set => throw new HeaderWritten(); }
        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new HeaderWritten();
        public override int Read(Span<byte> buffer) => throw new HeaderWritten();
        public override void CopyTo(Stream destination, int bufferSize) => throw new HeaderWritten();
        public override long Seek(long offset, SeekOrigin origin) => offset == 0 ? 0 : throw new HeaderWritten();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class NonSeekable(Stream inner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
    }

    /// <summary>Sequential reader over the segments from an offset.</summary>
    private sealed class Reader : Stream
    {
        private readonly TarLayer _layer;
        private readonly Action<long>? _progress;
        private readonly CancellationToken _ct;
        private long _position;
        private int _segment;
        private FileStream? _file;
        private Stream? _source;

        public Reader(TarLayer layer, long offset, Action<long>? progress, CancellationToken ct)
        {
            _layer = layer;
            _position = offset;
            _progress = progress;
            _ct = ct;
            int i = Array.BinarySearch(layer._starts, offset);
            _segment = i >= 0 ? i : ~i - 1;
            // skip empty segments (and land past the end when offset == Size)
            while (_segment < layer._segments.Length && _position >= layer._starts[_segment] + layer._segments[_segment].Length)
            {
                _segment++;
            }
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => _layer.Size;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            _layer._files is null ? ValueTask.FromResult(Read(buffer.Span)) : ReadFromSourceAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        /// <summary>
        /// The read loop for a pluggable file source (network streams: awaited, not blocked on); header and
        /// padding segments as in <see cref="Read(Span{byte})"/>.
        /// </summary>
        private async ValueTask<int> ReadFromSourceAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            _ct.ThrowIfCancellationRequested();
            int total = 0;
            while (buffer.Length > 0 && _segment < _layer._segments.Length)
            {
                var seg = _layer._segments[_segment];
                long inSeg = _position - _layer._starts[_segment];
                int want = (int)Math.Min(buffer.Length, seg.Length - inSeg);
                int n;
                switch (seg.Kind)
                {
                    case SegmentKind.Bytes:
                        seg.Data.AsMemory((int)inSeg, want).CopyTo(buffer);
                        n = want;
                        break;
                    case SegmentKind.Zeros:
                        buffer.Span[..want].Clear();
                        n = want;
                        break;
                    default:
                        var entry = seg.Entry!;
                        _source ??= _layer._files!.Open(entry, inSeg, _ct);
                        n = await _source.ReadAsync(buffer[..want], cancellationToken).ConfigureAwait(false);
                        if (n == 0)
                        {
                            throw new SourceChangedException($"'{entry.SourcePath}' ended after {inSeg} of {entry.Size} bytes");
                        }
                        _progress?.Invoke(n);
                        break;
                }
                buffer = buffer[n..];
                total += n;
                _position += n;
                if (inSeg + n == seg.Length)
                {
                    if (seg.Kind == SegmentKind.File)
                    {
                        // the source verifies after its last byte: read once more to let it (0 bytes expected)
                        var one = new byte[1];
                        if (await _source!.ReadAsync(one, cancellationToken).ConfigureAwait(false) != 0)
                        {
                            throw new SourceChangedException($"'{seg.Entry!.SourcePath}' is longer than its {seg.Entry.Size} bytes");
                        }
                        await _source.DisposeAsync().ConfigureAwait(false);
                        _source = null;
                    }
                    _segment++;
                }
                if (seg.Kind == SegmentKind.File && total > 0)
                {
                    break; // one source read per call: callers get the bytes as soon as they arrive
                }
            }
            return total;
        }

        public override void CopyTo(Stream destination, int bufferSize) => base.CopyTo(destination, Math.Max(bufferSize, 1 << 20));

        public override int Read(Span<byte> buffer)
        {
            _ct.ThrowIfCancellationRequested();
            int total = 0;
            while (buffer.Length > 0 && _segment < _layer._segments.Length)
            {
                var seg = _layer._segments[_segment];
                long inSeg = _position - _layer._starts[_segment];
                int want = (int)Math.Min(buffer.Length, seg.Length - inSeg);
                int n;
                switch (seg.Kind)
                {
                    case SegmentKind.Bytes:
                        seg.Data.AsSpan((int)inSeg, want).CopyTo(buffer);
                        n = want;
                        break;
                    case SegmentKind.Zeros:
                        buffer[..want].Clear();
                        n = want;
                        break;
                    default:
                        if (_layer._files is not null)
                        {
                            // sync callers of a network source (e.g. CopyTo): one awaited read at a time
                            var rented = new byte[want];
                            n = ReadFromSourceAsync(rented, CancellationToken.None).AsTask().GetAwaiter().GetResult();
                            rented.AsSpan(0, n).CopyTo(buffer);
                            return total + n;
                        }
                        n = ReadFile(seg.Entry!, inSeg, buffer[..want]);
                        _progress?.Invoke(n);
                        break;
                }
                buffer = buffer[n..];
                total += n;
                _position += n;
                if (inSeg + n == seg.Length)
                {
                    if (seg.Kind == SegmentKind.File)
                    {
                        CloseFile(seg.Entry!);
                    }
                    _segment++;
                }
                if (seg.Kind == SegmentKind.File && total > 0)
                {
                    break; // one file read per call: callers get the bytes as soon as the disk gives them
                }
            }
            return total;
        }

        private int ReadFile(LayerEntry entry, long at, Span<byte> buffer)
        {
            if (_file is null)
            {
                var path = entry.SourcePath ?? throw new ArgumentException($"file {entry.TarPath} has no source");
                _file = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.Open,
                    Access = FileAccess.Read,
                    Share = FileShare.Read,
                    BufferSize = 0,
                    Options = FileOptions.SequentialScan,
                });
                Check(entry, _file, "when opened");
                if (at > 0)
                {
                    _file.Seek(at, SeekOrigin.Begin);
                }
            }
            int n = _file.Read(buffer);
            if (n == 0)
            {
                throw new SourceChangedException($"'{entry.SourcePath}' changed while packing: it ended after {at} of {entry.Size} bytes");
            }
            return n;
        }

        private void CloseFile(LayerEntry entry)
        {
            if (_file is null)
            {
                return;
            }
            try
            {
                Check(entry, _file, "after reading");
            }
            finally
            {
                _file.Dispose();
                _file = null;
            }
        }

        private static void Check(LayerEntry entry, FileStream file, string when)
        {
            long length = file.Length;
            if (length != entry.Size)
            {
                throw new SourceChangedException($"'{entry.SourcePath}' changed while packing: {length} bytes {when}, {entry.Size} when scanned");
            }
            if (entry.ModifiedUtc is { } mtime && File.GetLastWriteTimeUtc(entry.SourcePath!) is var now && now != mtime)
            {
                throw new SourceChangedException($"'{entry.SourcePath}' changed while packing: modified at {now:O} ({when}), {mtime:O} when scanned");
            }
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _file?.Dispose();
                _file = null;
                _source?.Dispose();
                _source = null;
            }
            base.Dispose(disposing);
        }
    }
}
