using ModelCar.Common.IO;

namespace ModelCar.Oci.Layout;

/// <summary>
/// A layout's <see cref="IBlobWriter"/>: bytes go to a temp file in <c>blobs/sha256/</c> (a name
/// <see cref="OciLayout.RemoveStaleTempFiles"/> knows), <see cref="CommitAsync"/> checks the size and
/// renames it to its digest (dropped if that blob is already there); disposing without commit deletes it.
/// The caller hashes: the digest given to commit is trusted (the layout is local, written by us).
/// </summary>
public sealed class LayoutBlobWriter : IBlobWriter
{
    private readonly OciLayout _layout;
    private readonly string _tmp;
    private readonly long _size;
    private readonly string _mediaType;
    private FileStream? _file;
    private long _written;
    private bool _committed;

    internal LayoutBlobWriter(OciLayout layout, long size, string mediaType)
    {
        _layout = layout;
        _size = size;
        _mediaType = mediaType;
        var dir = Path.Combine(layout.Root, "blobs", "sha256");
        Files.EnsureDirectory(dir);
        _tmp = Path.Combine(dir, $".tmp-{Guid.NewGuid():N}");
        _file = Files.CreateFile(_tmp);
    }

    /// <summary>The stored blob, after <see cref="CommitAsync"/>.</summary>
    public Descriptor? Result { get; private set; }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var file = _file ?? throw new InvalidOperationException("blob writer already closed");
        if (_written + data.Length > _size)
        {
            throw new InvalidOperationException($"{_layout.Description}: {_written + data.Length} bytes written to a {_size}-byte blob");
        }
        await file.WriteAsync(data, ct).ConfigureAwait(false);
        _written += data.Length;
    }

    public async Task CommitAsync(Digest digest, CancellationToken ct)
    {
        var file = _file ?? throw new InvalidOperationException("blob writer already closed");
        if (_written != _size)
        {
            throw new InvalidOperationException($"{_layout.Description}: commit of {digest} after {_written} of {_size} bytes");
        }
        await file.FlushAsync(ct).ConfigureAwait(false);
        await file.DisposeAsync().ConfigureAwait(false);
        _file = null;
        Result = _layout.CommitTempBlob(_tmp, digest, _size, _mediaType);
        _committed = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_file is { } f)
        {
            await f.DisposeAsync().ConfigureAwait(false);
            _file = null;
        }
        if (!_committed)
        {
            Files.TryDelete(_tmp);
        }
    }
}
